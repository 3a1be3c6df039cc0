"""Studies of many runs (`cellsim study`): how often a genome recovers from how
much failure, under which clocks, int8 against float. spec -> runs -> Dask ->
one row per run -> table, plots, report. docs/studies.md.

    from cellsim.study import load_spec, plan_study, run_study
    outcome = run_study(plan_study(load_spec("spec.toml")), "runs/study", workers=2)"""
from .driver import StudyOutcome, StudyPlan, plan_study, run_study
from .spec import Run, StudySpec, load_spec, parse_spec, parse_spec_text

__all__ = ["Run", "StudyOutcome", "StudyPlan", "StudySpec", "load_spec", "parse_spec",
           "parse_spec_text", "plan_study", "run_study"]
