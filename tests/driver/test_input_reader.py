"""The AMS-style input reader: blocks, keys, case, comments, and errors that name the line."""

from __future__ import annotations

import pytest

from mlpotential.driver.input_reader import InputError, engine_keywords, parse_input

JOB = """\
Task GeometryOptimization   # optimise
System
  Atoms
    O  0.000  0.000  0.119
    H  0.000  0.763 -0.477
    H  0.000 -0.763 -0.477
  End
End
! a comment line
engine mlpotential
  model ANI-2x
  DEVICE cpu
EndEngine
GeometryOptimization
  MaxIterations 50
  Convergence
    Gradients 1e-4
  End
End
"""


def test_parse_job():
    root = parse_input(JOB)
    assert root.get("Task") == "GeometryOptimization"
    atoms = root.blocks["System"].blocks["Atoms"].lines
    assert [line for _, line in atoms][0] == "O  0.000  0.000  0.119"
    assert engine_keywords(root) == {"Model": "ANI-2x", "Device": "cpu"}
    optimisation = root.blocks["GeometryOptimization"]
    assert optimisation.get("MaxIterations") == "50"
    assert optimisation.blocks["Convergence"].keys["Gradients"] == ("1e-4", 17)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("Tsak SinglePoint\n", "line 1: unknown key or block 'Tsak'"),
        ("Engine MLPotential\n  Modle ANI-2x\nEndEngine\n", "line 2: unknown key or block 'Modle' in block Engine"),
        ("Engine DFTB\nEndEngine\n", "line 1: Engine 'DFTB' is not supported"),
        ("System\n  Atoms\n    H 0 0 0\n  End\n", "block System opened at line 1 is not closed by End"),
        ("Engine MLPotential\n  Model ANI-2x\nEnd\n", "line 3: unexpected End"),
        ("Task A\nTask B\n", "line 2: key Task given twice (first at line 1)"),
        ("End\n", "line 1: unexpected End: no block is open"),
    ],
)
def test_errors_name_the_line(text, fragment):
    with pytest.raises(InputError) as info:
        parse_input(text, "job.in")
    assert fragment in str(info.value)
    assert str(info.value).startswith("job.in")


def test_a_committee_s_parameter_files_on_several_lines() -> None:
    from mlpotential.driver.input_reader import engine_keywords, parse_input

    root = parse_input(
        "Task SinglePoint\nEngine MLPotential\n  Backend HDNNP\n  ParameterFile a.pt\n  ParameterFile b.pt\n"
        "  parameterfile c.pt\nEndEngine\n"
    )
    assert engine_keywords(root) == {"Backend": "HDNNP", "ParameterFile": ["a.pt", "b.pt", "c.pt"]}
