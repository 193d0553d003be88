"""Check ``prefect.yaml`` without a Prefect server (~3 s, most of it importing the flows).

What ``prefect deploy`` would reject, or accept and regret, caught before any server is involved:

* the file's structure, through Prefect's own model of ``prefect.yaml`` (the deploy code path);
* an explicit ``pull:`` step (without one a non-interactive deploy stores the current folder);
* per deployment: a unique name; an entrypoint that loads (``load_flow_from_entrypoint``);
  ``parameters`` that the flow accepts (``flow.validate_parameters``) with no unknown keys inside a
  parameter model (pydantic ignores those silently, so a typo would run with the default); the
  work pool; ``schedules`` (plural) that parse as Prefect builds them; a ``concurrency_limit``.

    python -m deployments.check_yaml [prefect.yaml] [--pool gpu-pool]
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_POOL = "gpu-pool"


def _unknown_keys(value: Any, schema: dict[str, Any], defs: dict[str, Any], path: str) -> list[str]:
    """Keys of ``value`` that the (pydantic-generated) JSON schema does not declare, recursively."""
    if "$ref" in schema:
        schema = defs.get(schema["$ref"].rsplit("/", 1)[-1], {})
    for key in ("allOf", "anyOf", "oneOf"):  # Optional[Model] and friends: the object branch
        for sub in schema.get(key, []):
            sub = defs.get(sub["$ref"].rsplit("/", 1)[-1], {}) if "$ref" in sub else sub
            if sub.get("properties"):
                schema = sub
                break
    props = schema.get("properties")
    if not isinstance(value, dict) or not props or schema.get("additionalProperties"):
        return []
    out = []
    for k, v in value.items():
        if k not in props:
            out.append(f"{path}.{k} (known: {', '.join(sorted(props))})")
        else:
            out.extend(_unknown_keys(v, props[k], defs, f"{path}.{k}"))
    return out


def _check_parameters(flow: Any, params: Any) -> list[str]:
    from prefect.utilities.callables import parameter_schema

    if not isinstance(params, dict):
        return [f"must be a mapping of flow parameters, got {type(params).__name__}"]
    try:
        flow.validate_parameters(params)
    except Exception as exc:  # noqa: BLE001 - ParameterTypeError, SignatureMismatchError, ...
        return [f"{type(exc).__name__}: {exc}"]
    schema = parameter_schema(flow).model_dump(by_alias=True)
    defs = schema.get("definitions", {})
    unknown = []
    for name, value in params.items():
        unknown += _unknown_keys(value, schema["properties"].get(name, {}), defs, name)
    return [f"unknown key {u}: the flow would ignore it" for u in unknown]


def _check_schedule(item: Any) -> str | None:
    from prefect.client.schemas.schedules import construct_schedule

    if not isinstance(item, dict):
        return f"must be a mapping with cron, interval or rrule, got {item!r}"
    try:  # Prefect's own model of a schedule entry in prefect.yaml (strict on unknown keys)
        from prefect.cli.deploy._models import RawScheduleConfig

        RawScheduleConfig.model_validate(item)
    except ImportError:  # private module moved in a later Prefect: construct_schedule still checks
        pass
    except Exception as exc:  # noqa: BLE001 - pydantic ValidationError
        return f"{item}: {exc}".replace("\n", " ")
    try:
        construct_schedule(
            interval=item.get("interval"),
            anchor_date=item.get("anchor_date"),
            cron=item.get("cron"),
            rrule=item.get("rrule"),
            timezone=item.get("timezone"),
        )
    except Exception as exc:  # noqa: BLE001 - ValueError from croniter/dateutil/pydantic
        return f"{item}: {exc}".replace("\n", " ")
    return None


def _check_concurrency(value: Any) -> str | None:
    limit = value.get("limit") if isinstance(value, dict) else value
    if value is None:
        return "missing: set concurrency_limit (1 for GPU work) so one host is never oversubscribed"
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        return f"{value!r} is not a whole number >= 1"
    return None


def validate_prefect_yaml(
    path: str | Path = REPO_ROOT / "prefect.yaml", *, pool: str = DEFAULT_POOL
) -> list[str]:
    """Problems of a ``prefect.yaml``, each naming the deployment and field; empty means fine.

    Args:
        path: the file; entrypoints are resolved relative to its folder (as ``prefect deploy``
            run from that folder does).
        pool: the work pool every deployment must use.

    Example:
        >>> validate_prefect_yaml("prefect.yaml")
        []
    """
    path = Path(path).resolve()
    root = path.parent
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        return [f"{path}: cannot read: {exc}"]
    if not isinstance(raw, dict):
        return [f"{path}: top level must be a mapping"]

    problems: list[str] = []
    try:
        from prefect.cli.deploy._models import PrefectYamlModel

        PrefectYamlModel.model_validate(raw)
    except ImportError:
        pass
    except Exception as exc:  # noqa: BLE001 - pydantic ValidationError
        problems.append(f"file structure: {exc}".replace("\n", " "))
    if not raw.get("pull"):
        problems.append(
            "pull: missing: add an explicit pull step (set_working_directory), else a deploy "
            "stores whatever folder it ran in"
        )
    for i, step in enumerate(raw.get("pull") or []):
        for name in step if isinstance(step, dict) else [step]:
            module, _, func = str(name).rpartition(".")
            try:
                getattr(importlib.import_module(module), func)
            except (ImportError, AttributeError, ValueError) as exc:
                problems.append(
                    f"pull[{i}]: step {name!r} cannot be imported ({exc}): a flow run would "
                    "crash before its code loads; name an importable function"
                )
    deployments = raw.get("deployments") or []
    if not deployments:
        problems.append("deployments: none defined")

    from prefect.flows import load_flow_from_entrypoint

    flows: dict[str, Any] = {}
    seen: set[str] = set()
    added = str(root) not in sys.path
    if added:  # flows import the project packages (gpuflows, tasks) from the repository root
        sys.path.insert(0, str(root))
    try:
        for i, dep in enumerate(deployments):
            if not isinstance(dep, dict):
                problems.append(f"deployments[{i}]: must be a mapping")
                continue
            name = dep.get("name") or f"#{i}"
            where = f"deployment {name!r}"
            if not dep.get("name"):
                problems.append(f"{where}: name: missing")
            elif name in seen:
                problems.append(f"{where}: name: duplicate")
            seen.add(name)

            flow = None
            entry = dep.get("entrypoint")
            if not entry or ":" not in str(entry):
                problems.append(f"{where}: entrypoint: {entry!r} is not 'path/to/file.py:flow_fn'")
            else:
                file_part, fn = str(entry).rsplit(":", 1)
                full = f"{(root / file_part)}:{fn}"
                if full not in flows:
                    try:
                        flows[full] = load_flow_from_entrypoint(full)
                    except Exception as exc:  # noqa: BLE001 - missing file, import error, not a flow
                        flows[full] = exc
                flow = flows[full]
                if isinstance(flow, Exception):
                    problems.append(
                        f"{where}: entrypoint: {entry!r} does not load "
                        f"({type(flow).__name__}: {flow})".replace("\n", " ")
                    )
                    flow = None
            if flow is not None:
                for p in _check_parameters(flow, dep.get("parameters") or {}):
                    problems.append(f"{where}: parameters: {p}".replace("\n", " "))

            wp = dep.get("work_pool") or {}
            wp_name = wp.get("name") if isinstance(wp, dict) else None
            if wp_name != pool:
                problems.append(f"{where}: work_pool.name: {wp_name!r}, expected {pool!r}")

            if "schedule" in dep:
                problems.append(f"{where}: schedule: use 'schedules:' (a list), not 'schedule:'")
            scheds = dep.get("schedules") or []
            if not isinstance(scheds, list):
                problems.append(f"{where}: schedules: must be a list")
                scheds = []
            for j, item in enumerate(scheds):
                if (msg := _check_schedule(item)) is not None:
                    problems.append(f"{where}: schedules[{j}]: {msg}")

            if (msg := _check_concurrency(dep.get("concurrency_limit"))) is not None:
                problems.append(f"{where}: concurrency_limit: {msg}")
    finally:
        if added:
            sys.path.remove(str(root))
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m deployments.check_yaml", description=__doc__.splitlines()[0]
    )
    ap.add_argument("path", nargs="?", type=Path, default=REPO_ROOT / "prefect.yaml")
    ap.add_argument("--pool", default=DEFAULT_POOL)
    a = ap.parse_args(argv)
    problems = validate_prefect_yaml(a.path, pool=a.pool)
    for p in problems:
        print(f"- {p}")
    print(f"{a.path}: {'OK' if not problems else f'{len(problems)} problem(s)'}")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
