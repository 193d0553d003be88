"""tasks/cli.py: a flow's command line generated from its Params model."""

from __future__ import annotations

import enum
from typing import Annotated, Literal

import pytest
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from tasks.cli import ParamsError, build_parser, parse_params, run_cli


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Monitor(BaseModel):
    """GPU monitor settings."""

    model_config = ConfigDict(extra="forbid")

    interval_s: float = Field(1.0, gt=0, description="Sampling interval in seconds.")
    enabled: bool = Field(True, description="Sample the GPU while the run works.")


class Small(BaseModel):
    """Every kind of field the CLI maps."""

    model_config = ConfigDict(extra="forbid")

    batch_size: int = Field(8, ge=1, le=256, description="Items per call.")
    rate: float = Field(0.5, gt=0, lt=1, description="A fraction.")
    name: str = Field("run", pattern=r"^[a-z]+$", description="Lowercase name.")
    mode: Literal["fast", "exact"] = Field("exact", description="How to compute.")
    level: Literal[1, 2, 3] = Field(2, description="An integer choice.")
    colour: Colour = Field(Colour.RED, description="An enum.")
    verbose: bool = Field(False, description="Say more.")
    sizes: list[Annotated[int, Field(ge=1)]] = Field(
        default_factory=lambda: [1, 2], description="Sizes to try."
    )
    kinds: list[Literal["x", "y"]] | None = Field(None, description="Kinds; empty: all.")
    limit: int | None = Field(None, ge=0, description="Cap; empty: none.")
    extra: dict[str, int] = Field(default_factory=dict, description="Overrides by name.")
    monitor: Monitor = Field(default_factory=Monitor, description="The monitor.")

    @field_validator("name")
    @classmethod
    def _not_reserved(cls, v: str) -> str:
        if v == "all":
            raise ValueError("name='all' is reserved: pick another name")
        return v

    @model_validator(mode="after")
    def _limit_fits(self) -> Small:
        if self.limit is not None and self.limit < self.batch_size:
            raise ValueError(f"limit: {self.limit} is below batch_size={self.batch_size}")
        return self


def _errors(argv, model=Small, **kw) -> list[str]:
    with pytest.raises(ParamsError) as exc:
        parse_params(model, argv, **kw)
    return exc.value.messages


def test_no_arguments_give_the_model_defaults():
    assert parse_params(Small, []) == Small()


def test_every_kind_of_field_parses():
    argv = (
        "--batch-size 4 --rate 0.25 --name abc --mode fast --level 3 --colour blue --verbose "
        "--sizes 3 5 --kinds y --limit 10 --extra a=1 --extra b=2 --monitor.interval-s 0.1 "
        "--no-monitor.enabled"
    )
    p = parse_params(Small, argv.split())
    assert p == Small(
        batch_size=4,
        rate=0.25,
        name="abc",
        mode="fast",
        level=3,
        colour=Colour.BLUE,
        verbose=True,
        sizes=[3, 5],
        kinds=["y"],
        limit=10,
        extra={"a": 1, "b": 2},
        monitor=Monitor(interval_s=0.1, enabled=False),
    )
    assert parse_params(Small, ["--verbose", "--no-verbose"]).verbose is False


def test_help_lists_every_field_with_default_constraint_and_choices(capsys):
    parser, options = build_parser(Small, prog="small")
    text = parser.format_help()
    assert {o.path for o in options} == {
        *((n,) for n in Small.model_fields if n != "monitor"),
        ("monitor", "interval_s"),
        ("monitor", "enabled"),
    }
    flags = (
        "--batch-size INT|--rate FLOAT|--name STR|--mode {fast,exact}|--level {1,2,3}|"
        "--colour {red,blue}|--verbose, --no-verbose|--sizes INT [INT ...]|"
        "--kinds {x,y} [{x,y} ...]|--limit INT|--extra KEY=VALUE|--monitor.interval-s|"
        "--monitor.enabled, --no-monitor.enabled"
    )
    for flag in flags.split("|"):
        assert flag in text, flag
    flat = " ".join(text.split())
    for words in (
        "Items per call. [>= 1, <= 256] (default: 8)",
        "A fraction. [> 0, < 1] (default: 0.5)",
        "[matching ^[a-z]+$] (default: run)",
        "(default: red)",
        "Say more. (default: no)",
        "Sizes to try. [one or more int, each >= 1] (default: 1 2)",
        "Cap; empty: none. [>= 0] (default: empty)",
        "monitor (Monitor):",
        "Sampling interval in seconds. [> 0] (default: 1.0)",
    ):
        assert words in flat, words
    with pytest.raises(SystemExit) as exc:
        parse_params(Small, ["--help"])
    assert exc.value.code == 0
    assert "--monitor.interval-s" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--batch-size", "-1"], "--batch-size: must be at least 1 (got -1)"),
        (["--batch-size", "300"], "--batch-size: must be at most 256 (got 300)"),
        (["--batch-size", "two"], "--batch-size: must be a whole number (got two)"),
        (["--rate", "0"], "--rate: must be greater than 0 (got 0)"),
        (["--rate", "1"], "--rate: must be less than 1 (got 1)"),
        (["--name", "A b"], "--name: must match ^[a-z]+$ (got 'A b')"),
        (["--name", "all"], "--name: name='all' is reserved: pick another name"),
        (["--mode", "slow"], "--mode: must be one of 'fast' or 'exact' (got slow)"),
        (["--level", "9"], "--level: must be one of 1, 2 or 3 (got 9)"),
        (["--colour", "green"], "--colour: must be one of 'red' or 'blue' (got green)"),
        (["--sizes", "2", "0"], "--sizes (value 2): must be at least 1 (got 0)"),
        (["--kinds", "z"], "--kinds (value 1): must be one of 'x' or 'y' (got z)"),
        (["--extra", "a=b"], "--extra[a]: must be a whole number (got b)"),
        (["--extra", "novalue"], "--extra: give KEY=VALUE (got 'novalue')"),
        (["--monitor.interval-s", "0"], "--monitor.interval-s: must be greater than 0 (got 0)"),
        (["--limit", "2"], "--limit: 2 is below batch_size=8"),
    ],
)
def test_a_bad_value_is_named_in_plain_words(argv, message):
    assert _errors(argv) == [message]


def test_every_bad_value_is_reported_at_once():
    assert _errors(["--batch-size", "0", "--rate", "2"]) == [
        "--batch-size: must be at least 1 (got 0)",
        "--rate: must be less than 1 (got 2)",
    ]


def test_run_cli_exit_codes_and_messages(capsys):
    seen = []
    rc = run_cli(seen.append, Small, ["--batch-size", "0"], prog="small")
    err = capsys.readouterr().err
    assert rc == 2 and seen == []
    assert err.splitlines() == [
        "error: --batch-size: must be at least 1 (got 0)",
        "(small --help lists every option)",
    ]
    assert "Input should be" not in err and "pydantic" not in err

    class BadData(ValueError):
        pass

    def flow(p):
        raise BadData("data.csv row 3: x is empty; fill it or drop the row")

    assert run_cli(flow, Small, [], errors=(BadData,)) == 2
    assert "error: data.csv row 3" in capsys.readouterr().err

    printed = []
    assert (
        run_cli(lambda p: p.batch_size * 2, Small, ["--batch-size", "3"], report=printed.append)
        == 0
    )
    assert printed == [6]
    with pytest.raises(SystemExit) as exc:  # argparse's own errors keep argparse's code
        run_cli(seen.append, Small, ["--no-such-option"])
    assert exc.value.code == 2


def test_aliases_keep_older_spellings():
    aliases = {"--bs": "batch_size", "--interval": "monitor.interval_s"}
    p = parse_params(Small, ["--bs", "3", "--interval", "2"], aliases=aliases)
    assert (p.batch_size, p.monitor.interval_s) == (3, 2.0)
    assert _errors(["--bs", "0"], aliases=aliases) == ["--batch-size: must be at least 1 (got 0)"]
    with pytest.raises(ValueError, match="--nope -> nope"):
        build_parser(Small, aliases={"--nope": "nope"})


def test_presets_for_a_model_without_a_preset_field():
    presets = {"big": {"batch_size": 64, "sizes": [8, 16]}, "tiny": {"batch_size": 1}}
    assert parse_params(Small, ["--preset", "big"], presets=presets) == Small(
        batch_size=64, sizes=[8, 16]
    )
    p = parse_params(Small, ["--preset", "big", "--batch-size", "2"], presets=presets)
    assert (p.batch_size, p.sizes) == (2, [8, 16])  # an explicit option wins
    assert parse_params(Small, [], presets=presets) == Small()
    assert "--preset {big,tiny}" in build_parser(Small, presets=presets)[0].format_help()

    class WithPreset(BaseModel):
        preset: Literal["a", "b"] = "a"

    with pytest.raises(ValueError, match="has a preset field"):
        build_parser(WithPreset, presets=presets)
    assert parse_params(WithPreset, ["--preset", "b"]).preset == "b"


# --- the flows' real Params ---------------------------------------------------------------------


def _flow_params():
    from flows.gpu_baseline import GpuBaselineParams
    from flows.rqa_sweep import RqaSweepParams
    from flows.two_stage_eval import TwoStageEvalParams

    return [GpuBaselineParams, RqaSweepParams, TwoStageEvalParams]


@pytest.fixture(params=[0, 1, 2], ids=["gpu_baseline", "rqa_sweep", "two_stage_eval"])
def flow_params(request):
    return _flow_params()[request.param]


def _leaves(model, prefix=()):
    for name, field in model.model_fields.items():
        sub = field.annotation
        if isinstance(sub, type) and issubclass(sub, BaseModel):
            yield from _leaves(sub, (*prefix, name))
        else:
            yield (*prefix, name)


def test_real_params_defaults_and_help(flow_params):
    assert parse_params(flow_params, []) == flow_params()
    text = build_parser(flow_params, prog="x")[0].format_help()
    for path in _leaves(flow_params):
        flag = "--" + ".".join(p.replace("_", "-") for p in path)
        assert flag in text, f"{flow_params.__name__}: {flag} missing from --help"


def test_real_params_bad_value_is_plain(flow_params):
    field = {"GpuBaselineParams": "repeats", "RqaSweepParams": "seed"}.get(
        flow_params.__name__, "batch_size"
    )
    bound = {"repeats": 3, "seed": 0, "batch_size": 1}[field]
    flag = "--" + field.replace("_", "-")
    assert _errors([flag, "-1"], model=flow_params) == [
        f"{flag}: must be at least {bound} (got -1)"
    ]


def test_rqa_sweep_options_of_the_old_cli_parse_the_same():
    from flows.rqa_sweep import RqaSweepParams

    aliases = {
        "--data": "data_path",
        "--task-runner": "task_runner.kind",
        "--dask-address": "task_runner.address",
        "--dask-workers": "task_runner.n_workers",
    }
    argv = (
        "--preset seed-test --device cpu --m 2 1 --tau 1 --eps 0.2 --l-min 2 --series x y "
        "--max-combinations 50 --seed 3 --dtype float32 --task-runner dask "
        "--dask-address tcp://h:8786 --data g.parquet"
    )
    p = parse_params(RqaSweepParams, argv.split(), aliases=aliases)
    assert p == RqaSweepParams(
        preset="seed-test",
        device="cpu",
        m=[1, 2],
        tau=[1],
        eps=[0.2],
        l_min=[2],
        series=["x", "y"],
        max_combinations=50,
        seed=3,
        dtype="float32",
        task_runner={"kind": "dask", "address": "tcp://h:8786"},
        data_path="g.parquet",
    )
    p = parse_params(
        RqaSweepParams, ["--task-runner", "dask", "--dask-workers", "2"], aliases=aliases
    )
    assert p.task_runner.n_workers == 2


# --- each flow's main(): the generated CLI, the old spellings, the printing after the run -------


class _Ran(Exception):
    """Raised by a stand-in flow, carrying the params main() built."""


def _capture(monkeypatch, module, name):
    def fake(params):
        raise _Ran(params)

    monkeypatch.setattr(module, name, fake)


def test_rqa_sweep_main_accepts_the_old_options(monkeypatch):
    import flows.rqa_sweep as mod

    _capture(monkeypatch, mod, "rqa_sweep")
    argv = (
        "--preset seed-test --data g.csv --device cpu --m 1 2 --tau 1 --eps 0.2 --l-min 2 "
        "--series x --max-combinations 40 --seed 1 --dtype float32 --task-runner dask "
        "--dask-workers 2"
    )
    with pytest.raises(_Ran) as ran:
        mod.main(argv.split())
    assert ran.value.args[0] == mod.RqaSweepParams(
        preset="seed-test",
        data_path="g.csv",
        device="cpu",
        m=[1, 2],
        tau=[1],
        eps=[0.2],
        l_min=[2],
        series=["x"],
        max_combinations=40,
        seed=1,
        dtype="float32",
        task_runner={"kind": "dask", "n_workers": 2},
    )
    with pytest.raises(_Ran) as ran:
        mod.main(["--preset", "smoke"])
    assert ran.value.args[0] == mod.RqaSweepParams(preset="smoke")
    with pytest.raises(_Ran) as ran:  # what the old CLI could not reach
        mod.main(["--monitor-interval-s", "0.5", "--no-normalize", "--task-runner.processes"])
    assert (ran.value.args[0].monitor_interval_s, ran.value.args[0].normalize) == (0.5, False)


def test_rqa_sweep_main_prints_the_result(monkeypatch, capsys):
    import flows.rqa_sweep as mod

    out = {
        "tier": "T1-Indicative",
        "device": "cpu",
        "rows": 12345,
        "table": "t.parquet",
        "stats": "s.parquet",
        "plots": ["a.png", "b.png"],
        "report": {"markdown": "r.md"},
    }
    monkeypatch.setattr(mod, "rqa_sweep", lambda params: out)
    assert mod.main([]) == 0
    text = capsys.readouterr().out
    assert "rqa-sweep finished: T1-Indicative on cpu, 12,345 rows" in text
    assert "plots:     a.png, b.png" in text and "report:    r.md" in text


def test_two_stage_eval_main_accepts_the_old_options(monkeypatch):
    import flows.two_stage_eval as mod

    _capture(monkeypatch, mod, "two_stage_eval")
    argv = (
        "--preset full --data b.jsonl --edit-model tiny --reward-model tiny --device cpu "
        "--dtype bfloat16 --vram-budget-gib 6.5 --batch-size 3 --prompts p.yaml --guidance 5 "
        "--max-new-tokens 16 --steps 2 --seed 4 --image-guidance 1.2 --monitor-interval-s 2"
    )
    with pytest.raises(_Ran) as ran:
        mod.main(argv.split())
    assert ran.value.args[0] == mod.TwoStageEvalParams(
        preset="full",
        data_path="b.jsonl",
        device="cpu",
        dtype="bfloat16",
        vram_budget_gib=6.5,
        batch_size=3,
        prompts_path="p.yaml",
        guidance=5,
        max_new_tokens=16,
        steps=2,
        seed=4,
        image_guidance=1.2,
        monitor_interval_s=2,
    )


def test_two_stage_eval_main_prints_the_result(monkeypatch, capsys):
    import flows.two_stage_eval as mod

    out = {
        "tier": "T1-Indicative",
        "device": "cpu",
        "summary": {"overall": {"n_scored": 9, "n_failed": 1}},
        "counts_line": "9 scored, 1 failed, 0 rejected (of 10 pairs read)",
        "rejected": 0,
        "swaps": 2,
        "swaps_planned": {"naive": 20, "per_category": 9},
        "swaps_planned_one_model": {"naive": 20, "per_category": 9, "ours": 1},
        "report": {"markdown": "r.md"},
    }
    monkeypatch.setattr(mod, "two_stage_eval", lambda params: out)
    assert mod.main(["--preset", "smoke"]) == 0
    text = capsys.readouterr().out
    assert "two-stage-eval finished: T1-Indicative on cpu: 9 scored, 1 failed, 0 rejected" in text
    assert "naive 20, per-category 9, ours 1" in text
    # the end of the summary is the same for every flow: report, files, artifacts
    assert "report:    r.md" in text and "files:" in text and "artifacts:" in text


def test_gpu_baseline_main_accepts_the_old_options(monkeypatch):
    import flows.gpu_baseline as mod

    _capture(monkeypatch, mod, "gpu_baseline")
    argv = (
        "--device cpu --repeats 5 --warmup 1 --seed 2 --size copy_nbytes=1024 --size a=2 --review"
    )
    with pytest.raises(_Ran) as ran:
        mod.main(argv.split())
    assert ran.value.args[0] == mod.GpuBaselineParams(
        device="cpu", repeats=5, warmup=1, seed=2, sizes={"copy_nbytes": 1024, "a": 2}, review=True
    )


@pytest.mark.parametrize(
    ("module", "flow", "argv", "message"),
    [
        ("flows.rqa_sweep", "rqa_sweep", ["--seed", "-1"], "--seed: must be at least 0 (got -1)"),
        (
            "flows.two_stage_eval",
            "two_stage_eval",
            ["--batch-size", "0"],
            "--batch-size: must be at least 1 (got 0)",
        ),
        (
            "flows.gpu_baseline",
            "gpu_baseline",
            ["--size", "copy_nbytes=big"],
            "--sizes[copy_nbytes]: must be a whole number (got big)",
        ),
    ],
)
def test_flow_main_refuses_a_bad_value_before_running(
    monkeypatch, capsys, module, flow, argv, message
):
    import importlib

    mod = importlib.import_module(module)
    _capture(monkeypatch, mod, flow)
    assert mod.main(argv) == 2
    assert f"error: {message}" in capsys.readouterr().err


@pytest.mark.parametrize(
    "module", ["flows.rqa_sweep", "flows.two_stage_eval", "flows.gpu_baseline"]
)
def test_flow_help_lists_every_field(module, capsys):
    import importlib

    mod = importlib.import_module(module)
    with pytest.raises(SystemExit) as exc:
        mod.main(["--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    params = next(v for k, v in vars(mod).items() if k.endswith("Params") and isinstance(v, type))
    for path in _leaves(params):
        assert "--" + ".".join(p.replace("_", "-") for p in path) in text


def test_gpu_baseline_main_prints_the_result(monkeypatch, capsys):
    import flows.gpu_baseline as mod

    out = {
        "tier": "T1-Indicative",
        "device": "cpu",
        "fallback": True,
        "report": {"markdown": "results/x/report.md", "flow_run_id": "1234"},
        "results_dir": "results/x",
    }
    monkeypatch.setattr(mod, "gpu_baseline", lambda params: out)
    monkeypatch.setattr("tasks.summary.run_artifact_keys", lambda run_id: ["gpu-baseline-report"])
    monkeypatch.setattr("tasks.summary.ui_run_url", lambda run_id: None)
    assert mod.main([]) == 0
    text = capsys.readouterr().out
    assert "gpu-baseline finished: T1-Indicative on cpu (CPU fallback)" in text
    assert "files:     results/x" in text and "server start" in text
    assert "artifacts: gpu-baseline-report" in text


def test_bad_input_is_logged_without_its_traceback_other_errors_keep_theirs():
    """A CLI run's bad input is one clean line, not ~30 lines of Prefect's traceback first."""
    import io
    import logging

    from tasks.cli import quiet_tracebacks

    class BadInput(ValueError):
        pass

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    log = logging.getLogger("prefect.flow_runs.test-cli")
    log.addHandler(handler)
    log.propagate = False
    logging.getLogger("prefect").addHandler(handler)
    try:
        with quiet_tracebacks((BadInput,)):
            for exc in (BadInput("column 'x' is missing"), RuntimeError("a real bug")):
                try:
                    raise exc
                except Exception:
                    logging.getLogger("prefect").exception("Encountered exception")
        logging.getLogger("prefect").exception("after the run", exc_info=BadInput("later"))
    finally:
        logging.getLogger("prefect").removeHandler(handler)
        log.removeHandler(handler)
    text = stream.getvalue()
    assert "column 'x' is missing" not in text  # bad input: the message only, no traceback
    assert text.count("Traceback") == 1 and "RuntimeError: a real bug" in text  # a bug keeps it
    assert "BadInput: later" in text  # the filter is gone after the run
