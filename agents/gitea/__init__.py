"""Gitea integration: linking a project to a repository, pull requests for finished cards, the
webhook-driven review loop and its periodic reconciliation. See docs/gitea.md."""
