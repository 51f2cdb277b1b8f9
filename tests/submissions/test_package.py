"""The bundle: every language's test run under the submission tag, validated, with a manifest and a zip."""

import json
import os
import zipfile

import pytest

from stages.config import load_config
from stages.formats import read_run, write_run
from submissions.package import SubmissionInvalid, package
from tests.helpers import TINY_LANGUAGES, make_release, write_config, write_lines


@pytest.fixture()
def release(tmp_path):
    layout = make_release(tmp_path / "rel")
    write_lines(layout.topics_path("en", "test-a"), ["31\tNile", "32\tEverest"])
    write_lines(layout.topics_path("sw", "test-a"), ["41\tKilimanjaro"])
    config = load_config(
        write_config(
            tmp_path / "c.yaml",
            data_root=tmp_path / "rel",
            work_root=tmp_path / "w",
            languages=TINY_LANGUAGES,
            submission={"tag": "team-x", "system": "fusion"},
        )
    )
    fused = {"en": {"31": {"1#0": 0.9, "1#1": 0.4}, "32": {"2#1": 0.8}}, "sw": {"41": {"9#0": 0.7, "7#0": 0.1}}}
    for lang, run in fused.items():
        path = config.run_path("fusion", lang, "test-a")
        write_run(run, path, tag="fusion-wsum", metadata={"inputs": {"runs": {}}, "method": "wsum"})
    return config


def test_bundle_holds_renamed_retagged_runs_a_manifest_and_a_zip(release):
    made = package(release, ["en", "sw"])
    bundle, archive = made.folder, made.archive
    names = sorted(p.name for p in bundle.iterdir())
    assert names == ["manifest.json", "run.miracl.team-x.en.test-a.txt", "run.miracl.team-x.sw.test-a.txt"]
    en = (bundle / "run.miracl.team-x.en.test-a.txt").read_text().splitlines()
    assert en[0] == "31 Q0 1#0 1 0.900000 team-x"
    assert read_run(bundle / "run.miracl.team-x.en.test-a.txt") == read_run(release.run_path("fusion", "en", "test-a"))
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["tag"] == "team-x" and manifest["git"]["commit"]
    assert [(f["language"], f["split"], f["queries"]) for f in manifest["files"]] == [
        ("en", "test-a", 2),
        ("sw", "test-a", 1),
    ]
    assert manifest["files"][0]["source"]["metadata"]["method"] == "wsum"
    assert bundle.name == "team-x.all" and archive.name == "team-x.all.zip"
    assert sorted(zipfile.ZipFile(archive).namelist()) == names


def test_one_language_makes_its_own_bundle(release):
    made = package(release, ["sw"])
    bundle = made.folder
    assert bundle.name == "team-x.sw" and [p.name for p in bundle.glob("run.*")] == ["run.miracl.team-x.sw.test-a.txt"]
    assert made.archive.name == "team-x.sw.zip" and made.archive.is_file()


def test_an_invalid_run_stops_packaging_and_leaves_nothing(release):
    write_run({"31": {"1#0": 0.9, "99#9": 0.5}}, release.run_path("fusion", "en", "test-a"), tag="fusion-wsum")
    with pytest.raises(SubmissionInvalid) as err:
        package(release, ["en", "sw"])
    assert "docid 99#9 is not in the corpus" in str(err.value) and "1 of 2 topics have no hits: 32" in str(err.value)
    assert not (release.work_dir / "submissions" / "team-x.all").exists()
    assert not list((release.work_dir / "submissions").glob("*.zip"))


def test_hits_beyond_the_leaderboards_100_are_cut_whatever_the_config_says(release):
    import dataclasses

    config = dataclasses.replace(release, fusion=dataclasses.replace(release.fusion, hits=1000))
    many = {"31": {f"{n}#0": 1.0 - n / 1000 for n in range(150)}, "32": {"2#1": 0.8}}
    corpus = release.data_root / "miracl-corpus-v1.0-en" / "docs-0.jsonl"
    corpus.write_text(
        corpus.read_text()
        + "".join(
            json.dumps({"docid": f"{n}#0", "title": "t", "text": "x"}) + "\n" for n in range(0, 150) if n not in (1, 2)
        )
    )
    write_run(many, release.run_path("fusion", "en", "test-a"), tag="fusion-wsum")
    made = package(config, ["en", "sw"])
    assert len(read_run(made.folder / "run.miracl.team-x.en.test-a.txt")["31"]) == 100


def test_an_unchanged_bundle_made_again_is_left_untouched_and_the_same_bytes(release):
    first = package(release, ["en", "sw"])
    stamps = {p.name: p.stat().st_mtime_ns for p in first.folder.iterdir()}
    zipped = first.archive.read_bytes()
    source = release.run_path("fusion", "en", "test-a")
    os.utime(source)  # an up-to-date stage touched its run: make asks for the zip again
    again = package(release, ["en", "sw"])
    assert not again.rewritten and first.rewritten
    assert {p.name: p.stat().st_mtime_ns for p in again.folder.iterdir()} == stamps
    # the zip, the same bytes, is touched: newer than the run again, so make stops asking
    assert again.archive.read_bytes() == zipped and again.archive.stat().st_mtime_ns >= source.stat().st_mtime_ns
    # gone and made again, later: the same bytes (no clock in the manifest, fixed dates in the zip)
    import shutil
    import time

    shutil.rmtree(first.folder)
    first.archive.unlink()
    time.sleep(1.1)
    remade = package(release, ["en", "sw"])
    assert remade.rewritten and remade.archive.read_bytes() == zipped
    manifest = json.loads((remade.folder / "manifest.json").read_text())
    written = [f["source"]["metadata"]["written"] for f in manifest["files"]]
    assert manifest["created"] == max(written)
    assert {info.date_time for info in zipfile.ZipFile(remade.archive).infolist()} == {(1980, 1, 1, 0, 0, 0)}
