"""A production-topology Orket cluster on one machine, for fault tests and benchmarks.

Two daphne processes (two ports), two Celery workers (distinct host names, one queue of the cluster's
own via ORKET_QUEUE) and one beat, all on 127.0.0.1, against:
- shared services (default): a fresh database `orket_cluster_<random>` on the PostgreSQL server at
  postgres://postgres@127.0.0.1:5432 (dropped at the end) and a Redis database number of the
  cluster's own on 127.0.0.1:6379 (flushed at the end);
- or private services (`private=True`, `--private`): a PostgreSQL made with initdb in a temporary
  folder and started with pg_ctl on a free port (as the postgres user when run as root), and a
  `redis-server --save ''` on a free port. The fault tests use these, because they stop and restart
  them, which must not disturb other users of the shared servers.

Everything is stopped at the end (SIGINT, then SIGKILL after a grace period; private servers
stopped, their folders removed). As a module:

    with Cluster(private=True) as cluster:
        client = cluster.login()
        ...
        cluster.kill_worker(0)            # SIGKILL
        cluster.restart_redis(downtime=2)
        cluster.restart_web(0)

As a command, from the repository root (processes keep running between `start` and `stop`; the
state lives in the folder given by --dir, default /tmp/orket-cluster):

    .venv/bin/python benchmarks/cluster.py start [--private] [--dir DIR]
    .venv/bin/python benchmarks/cluster.py status [--dir DIR]
    .venv/bin/python benchmarks/cluster.py stop [--dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402

from tests.processes import BIN, app_env, login_over_http, run_manage, wait_for_http  # noqa: E402
from tests.services import free_port, port_open  # noqa: E402

SHARED_POSTGRES = "postgres://postgres@127.0.0.1:5432"
SHARED_REDIS = "redis://127.0.0.1:6379"
SHARED_REDIS_DB = 13  # the cluster's own database number on the shared server
ADMIN, PASSWORD = "admin", "cluster admin password 7"
STOP_GRACE_SECONDS = 15.0
DEFAULT_DIR = Path(tempfile.gettempdir()) / "orket-cluster"
# Beat tasks the cluster does not exercise run rarely, so a cluster never touches sandboxes of others.
QUIET_SCHEDULES = {
    "ORKET_SANDBOX_HEALTH_SECONDS": "86400",
    "ORKET_SANDBOX_CLEANUP_SECONDS": "86400",
    "ORKET_GITEA_RECONCILE_SECONDS": "86400",
}


class ClusterError(RuntimeError):
    pass


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie is dead for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid: int, grace: float = STOP_GRACE_SECONDS, popen: subprocess.Popen[str] | None = None) -> None:
    """SIGINT, then SIGKILL when the process has not exited within `grace` seconds."""
    for sig, wait in ((signal.SIGINT, grace), (signal.SIGKILL, 5.0)):
        if not _pid_alive(pid):
            break
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if popen is not None and popen.poll() is not None:
                break
            if popen is None and not _pid_alive(pid):
                break
            time.sleep(0.05)
    if popen is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            popen.wait(5)


@dataclass
class Proc:
    """One process of the cluster: what was started, where it logs, and its pid."""

    name: str
    args: list[str]
    log: str
    pid: int = 0
    port: int = 0
    popen: subprocess.Popen[str] | None = field(default=None, repr=False, compare=False)

    def alive(self) -> bool:
        if self.popen is not None:
            return self.popen.poll() is None
        return bool(self.pid) and _pid_alive(self.pid)

    def tail(self, chars: int = 3000) -> str:
        try:
            return Path(self.log).read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "args": self.args, "log": self.log, "pid": self.pid, "port": self.port}


def _spawn(proc: Proc, env: dict[str, str], cwd: Path = ROOT) -> Proc:
    with open(proc.log, "a") as log:
        popen = subprocess.Popen(
            proc.args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True, start_new_session=True
        )
    proc.popen, proc.pid = popen, popen.pid
    return proc


def _as_postgres_user(args: list[str]) -> list[str]:
    """initdb and pg_ctl refuse to run as root: run them as the postgres user then."""
    if os.geteuid() == 0:
        return ["runuser", "-u", "postgres", "--", *args]
    return args


def _postgres_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), key=lambda p: int(p.parent.parent.name))
    if found:
        return found[-1].parent
    pg_ctl = shutil.which("pg_ctl")
    if pg_ctl:
        return Path(pg_ctl).parent
    raise ClusterError("no PostgreSQL server binaries (pg_ctl, initdb) found")


class PrivatePostgres:
    """A PostgreSQL server of the cluster's own: initdb in a folder, pg_ctl on a free port."""

    def __init__(self, folder: Path, port: int = 0) -> None:
        self.folder = folder
        self.data = folder / "pgdata"
        self.port = port or free_port()
        self.bin = _postgres_bin()
        self.log = folder / "postgres.log"

    @property
    def server_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}"

    def _run(self, *args: str, timeout: float = 120) -> None:
        result = subprocess.run(
            _as_postgres_user([str(self.bin / args[0]), *args[1:]]),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise ClusterError(f"{' '.join(args[:2])} failed: {result.stdout}{result.stderr}")

    def init(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.folder} "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200"
        )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        if (self.data / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop")

    def restart(self, downtime: float) -> None:
        self.stop()
        time.sleep(downtime)
        self.start()


class PrivateRedis:
    """A redis-server of the cluster's own on a free port, keeping nothing on disk."""

    def __init__(self, folder: Path, port: int = 0) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.proc: Proc | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> Proc:
        self.folder.mkdir(parents=True, exist_ok=True)
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        args += ["--dir", str(self.folder)]
        self.proc = _spawn(Proc("redis", args, str(self.folder / "redis.log"), port=self.port), os.environ.copy())
        _wait_port(self.port, 20, self.proc)
        return self.proc

    def stop(self) -> None:
        if self.proc is not None:
            stop_pid(self.proc.pid, 10, self.proc.popen)

    def restart(self, downtime: float) -> None:
        self.stop()
        time.sleep(downtime)
        self.start()


def _wait_port(port: int, timeout: float, proc: Proc | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(f"tcp://127.0.0.1:{port}", port):
            return
        if proc is not None and not proc.alive():
            raise ClusterError(f"{proc.name} exited before port {port} answered:\n{proc.tail()}")
        time.sleep(0.1)
    raise ClusterError(f"nothing answers on 127.0.0.1:{port} after {timeout} s")


def _wait_for_log(proc: Proc, needle: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in proc.tail(200_000):
            return
        if not proc.alive():
            raise ClusterError(f"{proc.name} exited:\n{proc.tail()}")
        time.sleep(0.1)
    raise ClusterError(f"{proc.name} did not log {needle!r} within {timeout} s:\n{proc.tail()}")


class Cluster:
    """Two daphne processes, two Celery workers and beat on 127.0.0.1 against PostgreSQL and Redis."""

    def __init__(
        self,
        *,
        private: bool = False,
        workdir: Path | None = None,
        webs: int = 2,
        workers: int = 2,
        pool: str = "solo",
        concurrency: int = 1,
        redis_db: int = SHARED_REDIS_DB,
        env: dict[str, str] | None = None,
    ) -> None:
        self.id = uuid.uuid4().hex[:8]
        self.private = private
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"orket-cluster-{self.id}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.web_count, self.worker_count = webs, workers
        self.pool, self.concurrency = pool, concurrency
        self.redis_db = redis_db
        self.extra_env = dict(env or {})
        self.database = f"orket_cluster_{self.id}"
        self.postgres: PrivatePostgres | None = None
        self.redis: PrivateRedis | None = None
        self.webs: list[Proc] = []
        self.workers: list[Proc] = []
        self.beat: Proc | None = None
        self.env: dict[str, str] = {}
        self._worker_serial = 0

    # -- addresses -------------------------------------------------------------------------------

    @property
    def postgres_server(self) -> str:
        return self.postgres.server_url if self.postgres else SHARED_POSTGRES

    @property
    def database_url(self) -> str:
        return f"{self.postgres_server}/{self.database}"

    @property
    def redis_url(self) -> str:
        return self.redis.url if self.redis else f"{SHARED_REDIS}/{self.redis_db}"

    def base_url(self, index: int = 0) -> str:
        return f"http://127.0.0.1:{self.webs[index].port}"

    # -- life cycle --------------------------------------------------------------------------------

    def __enter__(self) -> Cluster:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if self.private:
            # A folder of its own under the temporary directory: the postgres user (initdb refuses
            # root) may not be able to reach into the workdir (pytest's are private to root).
            self.postgres = PrivatePostgres(Path(tempfile.mkdtemp(prefix=f"orket-cluster-pg-{self.id}-")))
            self.postgres.init()
            self.postgres.start()
            self.redis = PrivateRedis(self.workdir / "redis")
            self.redis.start()
        elif not (port_open(SHARED_POSTGRES, 5432) and port_open(SHARED_REDIS, 6379)):
            raise ClusterError("PostgreSQL (127.0.0.1:5432) or Redis (127.0.0.1:6379) does not answer")
        with psycopg.connect(f"{self.postgres_server}/postgres", autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{self.database}"')
        settings = {
            "DATABASE_URL": self.database_url,
            "REDIS_URL": self.redis_url,
            "ORKET_QUEUE": f"orket-cluster-{self.id}",
            "ORKET_INSTANCE": f"cluster-{self.id}",
            "ORKET_DATA_DIR": str(self.workdir / "data"),
            "ORKET_ADMIN_USER": ADMIN,
            "ORKET_ADMIN_PASSWORD": PASSWORD,
            "ORKET_LOG_LEVEL": "INFO",
            **QUIET_SCHEDULES,
        }
        self.env = app_env(**{**settings, **self.extra_env})
        for command in (("migrate", "--noinput"), ("orket_seed",)):
            result = run_manage(self.env, *command)
            if result.returncode != 0:
                raise ClusterError(f"manage.py {command[0]} failed:\n{result.stdout}{result.stderr}")
        for index in range(self.web_count):
            self.webs.append(self._start_web(index, free_port()))
        for _ in range(self.worker_count):
            self.start_worker()
        self.start_beat()
        for web in self.webs:
            self.wait_web_ready(web)
        for worker in self.workers:
            _wait_for_log(worker, " ready.", 120)

    def stop(self) -> None:
        """Stop every process (SIGINT, then SIGKILL), the private servers, and drop what was created."""
        procs = [*self.webs, *self.workers, *([self.beat] if self.beat else [])]
        for proc in procs:
            if proc.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGINT)
        for proc in procs:
            stop_pid(proc.pid, STOP_GRACE_SECONDS, proc.popen)
        try:
            if self.postgres is None or (self.postgres.data / "postmaster.pid").exists():
                with psycopg.connect(f"{self.postgres_server}/postgres", autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
        except psycopg.Error as error:
            sys.stderr.write(f"cluster: could not drop {self.database}: {error}\n")
        if self.redis is not None:
            self.redis.stop()
        elif self.env:
            _flush_shared_redis(self.redis_db)
        if self.postgres is not None:
            try:
                self.postgres.stop()
            except ClusterError as error:
                sys.stderr.write(f"cluster: {error}\n")
            else:
                shutil.rmtree(self.postgres.folder, ignore_errors=True)
        if self._own_workdir and os.environ.get("ORKET_CLUSTER_KEEP") != "1":
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- processes ---------------------------------------------------------------------------------

    def _start_web(self, index: int, port: int) -> Proc:
        args = [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "--websocket_connect_timeout", "30"]
        args.append("orket_site.asgi:application")
        return _spawn(Proc(f"web{index}", args, str(self.workdir / f"web{index}.log"), port=port), self.env)

    def wait_web_ready(self, web: Proc, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            response = wait_for_http(f"http://127.0.0.1:{web.port}/readyz", timeout=timeout, process=web.popen)
            if response.status_code == 200:
                return
            time.sleep(0.2)
        raise ClusterError(f"{web.name} is not ready:\n{web.tail()}")

    def stop_web(self, index: int) -> None:
        web = self.webs[index]
        stop_pid(web.pid, STOP_GRACE_SECONDS, web.popen)

    def start_web(self, index: int) -> None:
        """Start web `index` again on its port."""
        old = self.webs[index]
        self.webs[index] = self._start_web(index, old.port)
        self.wait_web_ready(self.webs[index])

    def restart_web(self, index: int, downtime: float = 0.0) -> None:
        self.stop_web(index)
        time.sleep(downtime)
        self.start_web(index)

    def start_worker(self, wait: bool = False) -> Proc:
        self._worker_serial += 1
        name = f"w{self._worker_serial}"
        args = [str(BIN / "celery"), "-A", "orket_site", "worker", f"--pool={self.pool}"]
        args += [f"--concurrency={self.concurrency}", f"--hostname={name}-{self.id}@%h"]
        args += ["--without-mingle", "--without-gossip", "--loglevel=INFO"]
        worker = _spawn(Proc(name, args, str(self.workdir / f"{name}.log")), self.env)
        self.workers.append(worker)
        if wait:
            _wait_for_log(worker, " ready.", 120)
        return worker

    def kill_worker(self, worker: Proc, sig: int = signal.SIGKILL) -> None:
        os.kill(worker.pid, sig)
        if worker.popen is not None:
            worker.popen.wait(15)

    def start_beat(self) -> Proc:
        args = [str(BIN / "celery"), "-A", "orket_site", "beat", "--loglevel=INFO"]
        args += [f"--schedule={self.workdir / 'beat-schedule'}", f"--pidfile={self.workdir / 'beat.pid'}"]
        self.beat = _spawn(Proc("beat", args, str(self.workdir / "beat.log")), self.env)
        return self.beat

    def restart_redis(self, downtime: float = 1.0) -> None:
        if self.redis is None:
            raise ClusterError("only a private Redis can be restarted (Cluster(private=True))")
        self.redis.restart(downtime)

    def restart_postgres(self, downtime: float = 1.0) -> None:
        if self.postgres is None:
            raise ClusterError("only a private PostgreSQL can be restarted (Cluster(private=True))")
        self.postgres.restart(downtime)

    # -- using it ----------------------------------------------------------------------------------

    def login(self, index: int = 0) -> httpx.Client:
        return login_over_http(self.base_url(index), ADMIN, PASSWORD)

    def query(self, sql: str, *params: object) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.database_url, autocommit=True, connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def manage(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_manage(self.env, *args, timeout=timeout)

    def logs(self, chars: int = 3000) -> str:
        procs = [*self.webs, *self.workers, *([self.beat] if self.beat else [])]
        return "\n".join(f"--- {proc.name} (pid {proc.pid})\n{proc.tail(chars)}" for proc in procs)

    def status(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "workdir": str(self.workdir),
            "private": self.private,
            "database_url": self.database_url,
            "redis_url": self.redis_url,
            "web_urls": [f"http://127.0.0.1:{web.port}" for web in self.webs],
            "admin": {"username": ADMIN, "password": PASSWORD},
            "processes": [
                {**proc.state(), "alive": proc.alive()}
                for proc in [*self.webs, *self.workers, *([self.beat] if self.beat else [])]
            ],
        }


def _flush_shared_redis(db: int) -> None:
    import redis

    try:
        redis.Redis.from_url(f"{SHARED_REDIS}/{db}", socket_timeout=5).flushdb()
    except redis.RedisError as error:
        sys.stderr.write(f"cluster: could not flush Redis database {db}: {error}\n")


# ---------------------------------------------------------------------------------------------------
# Command line: start, status, stop (the state is kept in a JSON file between the commands).


def _state_file(folder: Path) -> Path:
    return folder / "cluster.json"


def cli_start(folder: Path, private: bool) -> int:
    if _state_file(folder).exists():
        sys.stderr.write(f"a cluster is already recorded in {_state_file(folder)}; stop it first\n")
        return 1
    folder.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(private=private, workdir=folder)
    try:
        cluster.start()
    except BaseException:
        sys.stderr.write(cluster.logs())
        cluster.stop()
        raise
    state = cluster.status()
    state["database"] = cluster.database
    state["redis_db"] = cluster.redis_db
    state["postgres"] = (
        {"data": str(cluster.postgres.data), "bin": str(cluster.postgres.bin)} if cluster.postgres else None
    )
    state["redis_pid"] = cluster.redis.proc.pid if cluster.redis and cluster.redis.proc else 0
    state["postgres_server"] = cluster.postgres_server
    _state_file(folder).write_text(json.dumps(state, indent=2))
    print(json.dumps({key: state[key] for key in ("web_urls", "database_url", "redis_url", "admin")}, indent=2))
    return 0


def cli_status(folder: Path) -> int:
    path = _state_file(folder)
    if not path.exists():
        print("no cluster recorded in", folder)
        return 1
    state = json.loads(path.read_text())
    for proc in state["processes"]:
        proc["alive"] = _pid_alive(proc["pid"])
    print(json.dumps({key: state[key] for key in ("web_urls", "database_url", "redis_url", "processes")}, indent=2))
    return 0 if all(proc["alive"] for proc in state["processes"]) else 2


def cli_stop(folder: Path) -> int:
    path = _state_file(folder)
    if not path.exists():
        print("no cluster recorded in", folder)
        return 1
    state = json.loads(path.read_text())
    for proc in state["processes"]:
        stop_pid(proc["pid"])
    try:
        with psycopg.connect(f"{state['postgres_server']}/postgres", autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{state["database"]}" WITH (FORCE)')
    except psycopg.Error as error:
        sys.stderr.write(f"could not drop {state['database']}: {error}\n")
    if state["redis_pid"]:
        stop_pid(state["redis_pid"], 10)
    elif not state["private"]:
        _flush_shared_redis(state["redis_db"])
    if state["postgres"]:
        pg_ctl = str(Path(state["postgres"]["bin"]) / "pg_ctl")
        subprocess.run(
            _as_postgres_user([pg_ctl, "-D", state["postgres"]["data"], "-m", "fast", "-w", "stop"]),
            capture_output=True,
            check=False,
        )
        shutil.rmtree(Path(state["postgres"]["data"]).parent, ignore_errors=True)
    path.unlink()
    print("stopped")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("command", choices=["start", "status", "stop"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="where the cluster keeps logs and state")
    parser.add_argument("--private", action="store_true", help="start a private PostgreSQL and Redis")
    options = parser.parse_args()
    folder = options.dir.resolve()
    if options.command == "start":
        return cli_start(folder, options.private)
    if options.command == "status":
        return cli_status(folder)
    return cli_stop(folder)


if __name__ == "__main__":
    sys.exit(main())
