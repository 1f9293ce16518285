"""WER: hand-counted alignments, the normaliser on the shared transcripts, and a plain-DP oracle."""

from __future__ import annotations

import random

import pytest

from tools.wer import normalize, number_to_words, ordinal_to_words, wer, word_errors


@pytest.mark.parametrize(
    "reference, hypothesis, expected",
    [
        ("the cat sat on the mat", "the cat sat on the mat", (0, 0, 0, 6)),
        ("the cat sat on the mat", "the cat sat on mat", (0, 1, 0, 6)),
        ("a b c d", "a x c e f", (2, 0, 1, 4)),  # b->x, d->e, +f
        ("hello world", "hello big wide world", (0, 0, 2, 2)),
        ("one two three", "", (0, 3, 0, 3)),
        ("", "surprise", (0, 0, 1, 0)),
        ("a b", "b a", (2, 0, 0, 2)),  # ties go to substitutions, not delete + insert
        ("x a b c", "a b c y", (0, 1, 1, 4)),
    ],
)
def test_word_errors_hand_counted(reference, hypothesis, expected):
    assert word_errors(reference, hypothesis, apply_normalize=False) == expected


def test_wer_values():
    assert wer("a b c d", "a x c e f") == 0.75
    assert wer("hello world", "hello big wide world") == 1.0
    with pytest.raises(ValueError, match="no words"):
        wer("", "anything")
    # Without normalisation case and punctuation count: "Hello," != "hello", 1 error in 2.
    assert wer("Hello, world", "hello world", apply_normalize=False) == 0.5
    assert wer("Hello, world", "hello world") == 0.0


def test_shared_transcripts_against_whisper_style_spellings(transcripts):
    jfk = transcripts["jfk.flac"]["text"]
    assert len(normalize(jfk).split()) == 22
    assert wer(jfk, "And so, my fellow Americans: ask not what your country can do for you; "
                    "ask what you can do for your country!") == 0.0  # fmt: skip
    assert wer(jfk, "and so my fellow americans ask not what your country can do for you "
                    "ask what you can do for our country") == 1 / 22  # fmt: skip

    libri = transcripts["libri_1.flac"]["text"]
    assert wer(libri, "Nor is Mr. Quilter\u2019s manner less interesting than his matter.") == 0.0
    assert word_errors(libri, "Nor is Mr. Quilters manner less interesting than his matter") == (1, 0, 0, 10)

    osr = transcripts["osr_0034_8k.wav"]["text"]
    assert "neighbor's" in normalize(osr).split()
    assert len(normalize(osr).split()) == 73  # 8+7+8+9+6+8+7+7+6+7, counted by hand
    # A change of case (not an error) and one dropped word: 1 deletion over 73 words.
    hypothesis = osr.replace("The long journey", "the long journey").replace("old coins", "coins")
    assert word_errors(osr, hypothesis) == (0, 1, 0, 73)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Mr. Smith met Mister Jones", "mister smith met mister jones"),
        ("Mrs. Dr. St. Prof. Jr.", "missus doctor saint professor junior"),
        ("twenty-one and 21", "twenty one and twenty one"),
        ("0 7 13 40 99 100", "zero seven thirteen forty ninety nine one hundred"),
        ("one hundred and five equals 105", "one hundred five equals one hundred five"),
        ("a hundred and fifty", "one hundred fifty"),
        ("two hundred and the rest", "two hundred and the rest"),
        ("1,000,000 people", "one million people"),
        ("the 1st, 2nd, 3rd, 12th and 40th", "the first second third twelfth and fortieth"),
        ("3.5% of $20", "three point five percent of twenty dollars"),
        ("The U.S.A. at 5 p.m.", "the usa at five pm"),
        ("well-known state-of-the-art", "well known state of the art"),
        ("'Quoted' dogs' neighbor\u2019s don't", "quoted dogs neighbor's don't"),
        ("agent 007 uses mp3", "agent zero zero seven uses mp3"),
        ("  Spaces\tand\nnewlines  ", "spaces and newlines"),
    ],
)
def test_normalize(text, expected):
    assert normalize(text) == expected


def test_number_words():
    assert [number_to_words(n) for n in (0, 15, 20, 42, 100, 101, 999)] == [
        "zero", "fifteen", "twenty", "forty two", "one hundred", "one hundred one",
        "nine hundred ninety nine",
    ]  # fmt: skip
    assert number_to_words(2_005_030) == "two million five thousand thirty"
    assert [ordinal_to_words(n) for n in (1, 5, 9, 20, 21, 100)] == [
        "first", "fifth", "ninth", "twentieth", "twenty first", "one hundredth",
    ]  # fmt: skip


def _plain_edit_distance(ref: list[str], hyp: list[str]) -> int:
    previous = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        current = [i]
        for j, h in enumerate(hyp, start=1):
            current.append(min(previous[j - 1] + (r != h), previous[j] + 1, current[j - 1] + 1))
        previous = current
    return previous[-1]


def test_vectorised_alignment_matches_plain_dynamic_programming():
    rng = random.Random(0)
    for _ in range(300):
        ref = [rng.choice("abcd") for _ in range(rng.randint(0, 12))]
        hyp = [rng.choice("abcd") for _ in range(rng.randint(0, 12))]
        subs, dels, ins, n_ref = word_errors(" ".join(ref), " ".join(hyp), apply_normalize=False)
        assert subs + dels + ins == _plain_edit_distance(ref, hyp)
        assert n_ref == len(ref) and len(hyp) - len(ref) == ins - dels
