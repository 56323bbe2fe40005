"""The workflow's configuration: its schema and defaults, one-line errors naming the file and the field, and
each source's settings layered over the global ones (``layered``, ``measure_settings``, ``llm_settings``, ...).
"""

from __future__ import annotations

import copy
import re
import sys
from pathlib import Path

import jsonschema
import yaml

from .errors import IsobenchError
from .jsonio import schema_problem
from .llm import POLICY_SHAPING, SHAPING
from .measure.runners import KINDS, kind_of
from .settings import SCHEMA, block_defaults, load_schema


def fail(message: str) -> None:
    """Stop the Snakefile with one line on stderr (no traceback)."""
    sys.stderr.write(f"isobench: {message}\n")
    sys.exit(1)


def check_config(config: dict, schema_path: str | Path = SCHEMA, config_name: str = "config") -> None:
    """One-line error for the first schema violation (snakemake.utils.validate then applies defaults)."""
    schema = load_schema(str(schema_path))
    error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(schema).iter_errors(config))
    if error is not None:
        raise IsobenchError(f"{config_name}: {schema_problem(error)}")


def measure_settings(config: dict, source: str, schema_path: str | Path = SCHEMA) -> dict:
    """Schema defaults, then the global ``measure``, then the source's ``measure``."""
    return layered(config, source, schema_path, "measure")


def analysis_settings(config: dict, schema_path: str | Path = SCHEMA) -> dict:
    """min_effect, alpha, ci_level, bootstrap and seed: the schema's defaults, then the config's."""
    return {**block_defaults("analysis", schema_path), **(config.get("analysis") or {})}


def layered(config: dict, source: str | None, schema_path: str | Path, key: str) -> dict:
    """A settings block: the schema's defaults, then the global ``key``, then the source's ``key`` (none: the
    global block alone)."""
    defaults = block_defaults(key, schema_path)
    own = (config["sources"][source].get(key) or {}) if source else {}
    return {**defaults, **(config.get(key) or {}), **own}


def llm_settings(config: dict, source: str, schema_path: str | Path = SCHEMA) -> dict:
    return layered(config, source, schema_path, "llm")


def check_runners(config: dict, schema_path: str | Path = SCHEMA) -> None:
    """Environment modes and runners that cannot work together are config errors (one line)."""
    names = [k for k, v in KINDS.items() if v.container]
    in_image = f"{', '.join(names[:-1])} or {names[-1]}"
    for name in config["sources"]:
        runner, env = layered(config, name, schema_path, "runner"), layered(config, name, schema_path, "env")
        where = f"config: field sources.{name}"
        try:
            kind = kind_of(runner["kind"])
        except IsobenchError as e:
            raise IsobenchError(f"{where}.{e}") from None
        if kind.container and not runner.get("image"):
            raise IsobenchError(f"{where}.runner.image: runner {kind.name} needs an image")
        if env["mode"] == "image" and not kind.container:
            raise IsobenchError(f"{where}.env.mode: mode image needs runner kind {in_image}")
        if env["mode"] != "image" and kind.container:
            raise IsobenchError(
                f"{where}.env.mode: mode {env['mode']} uses this machine's Python; with runner "
                f"{kind.name} use mode image"
            )


LLM_SHAPING = (*SHAPING, *POLICY_SHAPING)  # the one list: isobench/llm.py's and the generation policy's


def llm_shaping(settings: dict) -> dict:
    """The LLM settings that change which script a commit gets (the others only change how it is fetched)."""
    return {k: settings[k] for k in LLM_SHAPING}


def template_for(config: dict, source: str) -> str:
    return config["sources"][source].get("prompt_template") or config["prompt_template"]


RECORDED_SOURCE_KEYS = ("version", "setup_commands", "install_commands", "notes")


def public_source_config(config: dict, source: str) -> dict:
    """What a record copies from its source's config. Only these keys: a record job's params must not
    change when another commit is added to the source (nor hold its whole commit list)."""
    cfg = config["sources"][source]
    return {k: copy.deepcopy(cfg.get(k)) for k in RECORDED_SOURCE_KEYS}


def load_config(path: str | Path, schema_path: str | Path = SCHEMA, overrides: list[str | Path] = ()) -> dict:
    """A config file (and later ones merged over it, as Snakemake's --configfile does), checked against the
    schema with its defaults applied: what a run of the workflow in this folder sees."""
    from snakemake.utils import update_config

    config: dict = {}
    layers: list[tuple[str, dict]] = []
    for name in (path, *overrides):
        data = read_yaml(name)
        layers.append((str(name), data))
        update_config(config, data)
    from .experiments import adopt

    try:
        adopt(config, [path, *overrides])
        prepare_config(config, schema_path, str(path))
    except IsobenchError as exc:  # name the file that set the field, not always the first one
        raise IsobenchError(_blame(str(exc), layers)) from None
    return config


def read_yaml(name: str | Path) -> dict:
    """The settings of one config file; a file that cannot be read, is not YAML or is not a mapping is one line
    naming it (and, for YAML, the line and column)."""
    try:
        with open(name, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise IsobenchError(f"{name}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise IsobenchError(f"{name}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise IsobenchError(
            f"{name}: not YAML{at}: {getattr(exc, 'problem', None) or str(exc).splitlines()[0]}"
        ) from None
    if not isinstance(data, dict):
        raise IsobenchError(f"{name}: expected a mapping of settings, got {type(data).__name__}")
    return data


def check_config_file(name: str) -> None:
    """Before the Snakefile's ``configfile:`` reads ``name`` (Snakemake's own error for a broken file names
    neither the file nor the line): stop with one line naming the file, line and column. A missing file is left
    to Snakemake (a --configfile may stand in for it)."""
    if Path(name).is_file():
        try:
            read_yaml(name)
        except IsobenchError as exc:
            fail(str(exc))


def _blame(message: str, layers: list[tuple[str, dict]]) -> str:
    """``message`` ("FILE: field a.b.c: ...") naming the last of ``layers`` that sets the field a.b.c."""
    m = re.match(r"^(.*?): field (\S+): ", message)
    if not m:
        return message
    parts = m.group(2).split(".")
    for name, data in reversed(layers):
        node = data
        for part in parts:
            if isinstance(node, dict) and part in node:
                node = node[part]
            elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                break
        else:
            return f"{name}{message[len(m.group(1)) :]}"
    return message


def prepare_config(config: dict, schema_path: str | Path = SCHEMA, config_name: str = "config") -> None:
    """Check ``config`` (one-line errors), fill in the schema's defaults, check the runners: what the
    workflow does with its config before planning, and what `isobench audit` does with the same files."""
    from snakemake.utils import validate

    check_config(config, schema_path, config_name)
    validate(config, str(schema_path))
    check_runners(config, schema_path)
