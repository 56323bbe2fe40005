"""ISO-Bench's own run configuration, ``experiments.yaml``, read as it is (``snakemake --configfile experiments.yaml``).

Its keys become one source and the run's dataset and publish settings, before the config is checked. Each key
is used or, where it can have no effect, reported once (docs/configuration.md, "ISO-Bench's experiments.yaml"):

- ``repo_path`` → the source's ``repo`` (its name from the folder; ``repo_name`` from the clone's GitHub
  ``origin``, so that instance ids are ISO-Bench's ``owner__repo-<sha7>``);
- ``extractions_dir`` → its ``extractions``; ``generated_test_generators_v4/`` beside that folder, where
  ISO-Bench keeps pre-generated scripts, → its ``generators``;
- ``setup_commands``/``install_commands`` → run in each revision's environment build and recorded: a venv per
  revision that sees the host's packages (ISO-Bench only wrote them down);
- ``use_docker``/``docker_image`` → runner docker with that image, the tree run from source in it;
- ``dataset_name`` → the dataset ``data/<dataset_name>.jsonl``; ``push_to_hf``/``hf_repo`` → ``publish``
  (``<hf_repo's namespace>/<dataset_name>``, or ``hf_repo`` itself when it names a repository);
- ``notes`` → the records' ``notes``; ``api`` → not used (each record's ``api`` comes from its extraction).

Like ISO-Bench, such a run measures that one repository: the sources of config/config.yaml (the demo) are not
added, unless the file itself has a ``sources`` block.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import yaml

from .errors import IsobenchError

ISO_KEYS = (
    "repo_path",
    "extractions_dir",
    "use_docker",
    "docker_image",
    "dataset_name",
    "hf_repo",
    "push_to_hf",
    "setup_commands",
    "install_commands",
    "api",
    "notes",
)
GENERATORS_DIR = "generated_test_generators_v4"
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _settings(name: str) -> dict:
    """The top-level settings of a config file ({} when it cannot be read: the config check says why)."""
    try:
        with open(name, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return {}
    return data if isinstance(data, dict) else {}


def experiments_file(configfiles) -> str:
    """The config file that holds ISO-Bench's keys (the last one given that has one)."""
    for name in reversed([str(f) for f in configfiles or []]):
        if any(k in _settings(name) for k in ISO_KEYS):
            return name
    return "experiments.yaml"


def adopt(config: dict, configfiles=()) -> list[str]:
    """Turn ISO-Bench's keys in ``config`` into isobench's, in place. Returns the lines to print once: the keys
    that have no effect. A key that cannot be honoured is one line naming the file and the key."""
    present = [k for k in ISO_KEYS if k in config]
    if not present:
        return []
    where = experiments_file(configfiles)
    iso = {k: config.pop(k) for k in present}

    def bad(key: str, why: str) -> IsobenchError:
        return IsobenchError(f"{where}: field {key}: {why}")

    if not iso.get("repo_path"):
        raise bad(
            "repo_path", f"ISO-Bench keys ({', '.join(present)}) need repo_path, the repository to measure"
        )
    for key in ("repo_path", "extractions_dir", "docker_image", "dataset_name", "hf_repo", "api", "notes"):
        if iso.get(key) is not None and not isinstance(iso[key], str):
            raise bad(key, f"expected a string, got {type(iso[key]).__name__}")
    for key in ("setup_commands", "install_commands"):
        value = iso.get(key) or []
        if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
            raise bad(key, "expected a list of commands (strings)")
    for key in ("use_docker", "push_to_hf"):
        if not isinstance(iso.get(key, False), bool):
            raise bad(key, "expected true or false")
    notes: list[str] = []
    repo = str(iso["repo_path"])
    name = source_name(repo)
    source: dict = {"repo": repo, "repo_name": github_name(repo) or name}
    if iso.get("extractions_dir"):
        extractions = Path(iso["extractions_dir"])
        source["extractions"] = str(extractions)
        beside = extractions.parent / GENERATORS_DIR
        if beside.is_dir():
            source["generators"] = str(beside)
    commands = {k: list(iso.get(k) or []) for k in ("setup_commands", "install_commands")}
    source.update(commands)
    if iso.get("use_docker"):
        if not iso.get("docker_image"):
            raise bad("docker_image", "use_docker is true: name the image the tests run in")
        if any(commands.values()):
            raise bad(
                "install_commands",
                "with use_docker the image is each revision's environment: build it with these commands, "
                "or set use_docker: false to have them build a venv per revision",
            )
        source["runner"] = {"kind": "docker", "image": iso["docker_image"]}
        source["env"] = {"mode": "image"}
    else:
        if iso.get("docker_image"):
            notes.append("docker_image: not used (use_docker is false)")
        if any(commands.values()):
            source["env"] = {"mode": "venv", "system_site_packages": True}
    if iso.get("notes") is not None:
        source["notes"] = iso["notes"]
    if iso.get("api") is not None:
        notes.append("api: not used (each record's api comes from its extraction's affected_apis)")
    if iso.get("dataset_name") is not None:
        if not NAME.fullmatch(iso["dataset_name"]) or ".." in iso["dataset_name"]:
            raise bad(
                "dataset_name", "letters, digits, '_', '-' and '.' only (it names data/<dataset_name>.jsonl)"
            )
        config["dataset"] = f"data/{iso['dataset_name']}.jsonl"
    if iso.get("push_to_hf"):
        config["publish"] = {**(config.get("publish") or {}), "repo_id": hub_repo_id(iso, bad)}
    elif iso.get("hf_repo"):
        notes.append("hf_repo: not used (push_to_hf is false)")
    own = _settings(where)
    config["sources"] = (
        {**(config.get("sources") or {}), name: source} if "sources" in own else {name: source}
    )
    return [f"{where}: {n}" for n in notes]


def source_name(repo: str) -> str:
    """A source name from a repository path or URL (its last part, without .git)."""
    last = re.sub(r"\.git$", "", repo.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1])
    return re.sub(r"[^A-Za-z0-9_.-]", "-", last).lstrip("-._") or "repo"


def github_name(repo: str) -> str | None:
    """owner/name of a GitHub URL, or of the ``origin`` of a local clone; None otherwise."""
    url = repo
    if Path(repo).is_dir():
        try:
            url = subprocess.run(
                ["git", "-C", repo, "remote", "get-url", "origin"], capture_output=True, text=True, timeout=30
            ).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return None
    found = re.search(r"github\.com[:/]([A-Za-z0-9_.-]+)/([A-Za-z0-9_.-]+?)(?:\.git)?/?$", url)
    return f"{found.group(1)}/{found.group(2)}" if found else None


def hub_repo_id(iso: dict, bad) -> str:
    """The Hub dataset repository ISO-Bench pushes to: ``hf_repo`` is a namespace URL (https://huggingface.co/ORG)
    to which ``dataset_name`` is added, or names the repository itself."""
    url = iso.get("hf_repo")
    if not url:
        raise bad(
            "hf_repo", "push_to_hf is true: name the Hub namespace or repository (https://huggingface.co/ORG)"
        )
    path = re.sub(r"^https?://[^/]+/", "", url.strip()).strip("/")
    parts = [p for p in path.split("/") if p]
    if parts and parts[0] == "datasets":
        parts = parts[1:]
    if len(parts) == 1 and iso.get("dataset_name"):
        parts.append(iso["dataset_name"])
    if len(parts) != 2 or not all(NAME.fullmatch(p) for p in parts):
        raise bad("hf_repo", f"{url!r} names no Hub dataset repository (namespace/name)")
    return "/".join(parts)
