"""The tuning run's tables (compile/tuning/report.py): the report names resume as the caller spells it."""


def test_report_names_resume_as_the_caller_spells_it(history):
    import dataclasses

    from tvmdeploy.compile.tuning.report import format_report
    from tvmdeploy.runtime.errors import spelling

    _, tuned = history
    stopped = dataclasses.replace(tuned, interrupted=True)
    report = format_report(stopped)
    assert report.startswith("\n  # task") and "kernel time x calls:" in report
    assert report.endswith(f"database: {tuned.folder} (interrupted; resume continues)")
    with spelling(lambda name: "--" + name):  # as under the CLI
        assert format_report(stopped).endswith("(interrupted; --resume continues)")
    assert format_report(tuned).endswith(f"database: {tuned.folder}")
