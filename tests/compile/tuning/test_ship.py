"""Shipping a log (compile/tuning/ship.py): the best record per task and the history's meta."""


def test_a_shipped_log_holds_the_best_record_of_every_task_and_the_meta(history, avx2_profile, tmp_path):
    from tvmdeploy.compile.tuning.database import META_FILE, open_database
    from tvmdeploy.compile.tuning.ship import ship_log

    model, tuned = history
    shipped = ship_log(model, avx2_profile, tuned.folder, tmp_path / "shipped")
    assert shipped.reranked is None and shipped.folder == tmp_path / "shipped"
    records = open_database(shipped.folder, readonly=True, quiet=True).get_all_tuning_records()
    tasks = {o.info.name for o in tuned.outcomes if o.trials_after}
    assert len(records) == shipped.records == len(tasks)  # one per task: the build only applies the best
    assert (shipped.folder / META_FILE).read_text() == (tuned.folder / META_FILE).read_text()
