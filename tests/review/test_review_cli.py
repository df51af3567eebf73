"""`defectscope review queue|export` and `defectscope monitor` on a small results log."""

from __future__ import annotations

import json

from defectscope.cli import main
from defectscope.data.images.importers import import_mvtec
from defectscope.review import submit_review
from defectscope.store import ImageArchive, ResultStore, ReviewStore
from defectscope.values import PartResult, Verdict

from tests.conftest import good_part
from tests.review.test_review import encode


def test_queue_export_and_monitor_from_the_command_line(tmp_path, tiny_mvtec, capsys):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    store, archive = ResultStore(url), ImageArchive(tmp_path / "archive")
    ids = [store.add(PartResult(f"p{i}", 1000.0 + 60 * i, Verdict.UNSURE if i == 3 else Verdict.OK,
                                0.2, 0.5, "m1", timings={"model": 5.0}),
                     image_path=str(archive.put(encode(good_part(300 + i)), ".png")))
           for i in range(40)]
    assert main(["review", "queue", "--db", url, "--ok-rate", "0"]) == 0
    assert capsys.readouterr().out.split("\t")[1] == "p3"
    submit_review(ReviewStore(store), archive, ids[3], "OK")
    base = import_mvtec(tiny_mvtec).manifest.save(tmp_path / "base.json")
    assert main(["review", "export", "--db", url, "--archive", str(tmp_path / "archive"),
                 "--out", str(tmp_path / "datasets"), "--base", str(base)]) == 0
    assert "1 reviewed parts added" in capsys.readouterr().out
    assert main(["review", "export", "--db", url, "--archive", str(tmp_path / "archive"),
                 "--out", str(tmp_path / "datasets")]) == 2  # nothing new: a clear error
    assert "nothing to export" in capsys.readouterr().err
    assert main(["monitor", "--db", url, "--json", "--reference-size", "20"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["stats"]["n"] == 40 and report["drift"]["n_reference"] == 20
    store.close()
