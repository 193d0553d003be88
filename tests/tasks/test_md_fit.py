"""tasks.md_fit: tables with cells too long for the artifact page become lists, values in full."""

from tasks.md_fit import fit_tables

LONG = "gpuflows 0.1.0, prefect 3.8.8, torch 2.13.0+cpu, numpy 2.4.6, transformers 5.23.0"


def test_a_table_with_a_long_cell_becomes_a_list_with_every_value():
    md = f"## Lock\n\n| item | value |\n|---|---|\n| seed | 0 |\n| packages | {LONG} |\n\nafter\n"
    out = fit_tables(md)
    assert "|---|" not in out
    assert "- **seed** · value: 0" in out and f"- **packages** · value: {LONG}" in out
    assert out.startswith("## Lock\n\n") and out.endswith("\nafter\n")


def test_short_tables_and_code_stay_as_they_are():
    short = "| check | result |\n|---|---|\n| integrity | pass |\n"
    assert fit_tables(short) == short
    fenced = f"```\n| a | b |\n|---|---|\n| x | {LONG} |\n```\n"
    assert fit_tables(fenced) == fenced


def test_empty_cells_are_left_out_of_the_list_item():
    md = "| check | result | measured | detail |\n|---|---|---|---|\n"
    md += f"| reproduced | FAIL |  | {LONG} |\n"
    assert fit_tables(md).strip() == f"- **reproduced** · result: FAIL · detail: {LONG}"
