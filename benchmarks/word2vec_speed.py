"""word2vec against gensim end to end, each run in a process of its own, alternated: time, words/s, memory, quality.

    python -m benchmarks.word2vec_speed [--corpus=zipf|generated|text:PATH] [--tokens=20000000]
        [--zipf_words=100000] [--rounds=2] [--config.model=sgns|cbow|fasttext|fasttext_cbow]
        [--config.loss=negative|hs] [--config.KEY=VALUE ...]
        [--gensim_workers=2] [--gensim_input=linesentence|corpus_file] [--nogensim]
        [--share_negatives=1,4] [--workdir=runs/word2vec_speed] [--quick]

The corpus is a file both systems read, one sentence a line, tokens separated by spaces:
  zipf        (default) train/data/corpus.py's generate_zipf_corpus: --tokens tokens (20M) over a Zipf lexicon of
              --zipf_words words (100k, exponent --zipf_exponent) with the planted relations in 10% of them:
              about 101k words at min_count 5. Written once to WORKDIR and reused.
  generated   train.word2vec's default corpus (config.num_tokens tokens, 2M; ~900 words).
  text:PATH   a user's text (a file, directory or glob, as train.word2vec reads it), tokenized once beforehand by
              config.tokenizer / config.lowercase into WORKDIR, so that gensim (split on spaces) and ours see the
              same tokens; that preparation is timed apart and belongs to neither system.
Each round runs ours (once per --share_negatives value) and then gensim, each as
`python -m benchmarks.word2vec_worker` in a fresh process, so runs do not share caches or memory and every
figure is what a user waits for: start-up, reading and counting the corpus, building the vocabulary, compiling
(ours), training, writing the vectors (word2vec binary format). Per run: end-to-end wall seconds (from the spawn
to the vectors written), the phases, training words/s (ours: the steps after the compiling one; gensim: its
train()), the CPU seconds of the process, its peak RSS (os.wait4's ru_maxrss) and quality, scored on the
written vectors for both the same way: the planted analogies and similarity Spearman (train.evaluation.words)
on the generated corpora; on a user's text gensim's own evaluators on the questions-words.txt and wordsim353.tsv
gensim ships (gensim.test.utils.datapath), or config.analogies / config.wordsim, through
train.data.vectors.WordVectors. Hyperparameters are train.word2vec's config (skip-gram, negative 5, window 5,
dim 100, min_count 5, sample 1e-3, 5 epochs, alpha 0.025 -> 0.0001), matched in gensim (sg=1 for sgns; sg=0,
cbow_mean=1 for cbow; FastText(sg=1 or 0, min_n=minn, max_n=maxn, bucket) for fasttext and fasttext_cbow;
hs=1, negative=0 for --config.loss=hs). For FastText both runs also write subwords.npz (gensim's from its
wv.vectors_vocab and wv.vectors_ngrams) and are scored on unseen words too, the same way: the mean cosine between
a word's vector and that of a misspelling of it that is not in the vocabulary (two middle letters swapped; up to
500 frequent words of 5 letters or more), beside the same cosine with the misspelling of another word (the
baseline). Prints a markdown table of every run, one of the medians and the ratios ours / gensim,
and the load average (these are shared machines). --quick: a seconds-long run (200k tokens, a 20k-word
lexicon, one epoch, dim 32, one round), for the tests.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import statistics
import subprocess
import sys
import time

from absl import app, flags
from ml_collections import config_flags

from train import word2vec as train_word2vec
from train.data import corpus as generated_corpus, text as text_data

config_flags.DEFINE_config_dict("config", train_word2vec.get_config())
flags.DEFINE_string("corpus", "zipf", "zipf (a realistic vocabulary), generated (the default corpus) or text:PATH.")
flags.DEFINE_integer("tokens", generated_corpus.ZIPF_TOKENS, "Tokens of the zipf corpus.")
flags.DEFINE_integer("zipf_words", generated_corpus.ZIPF_WORDS, "Words of the zipf corpus's lexicon.")
flags.DEFINE_float("zipf_exponent", generated_corpus.ZIPF_EXPONENT, "Zipf exponent of the zipf corpus's lexicon.")
flags.DEFINE_integer("rounds", 2, "Rounds of alternated runs: ours, gensim, ours, gensim, ...")
flags.DEFINE_integer("gensim_workers", 2, "gensim worker threads (one per core is gensim's best).")
flags.DEFINE_enum(
    "gensim_input",
    "linesentence",
    ["linesentence", "corpus_file"],
    "How gensim reads the file: LineSentence (streamed by one feeder thread) or corpus_file (every worker reads).",
)
flags.DEFINE_bool("gensim", True, "Also run gensim (if installed); --nogensim skips it.")
flags.DEFINE_list("share_negatives", [], "Run ours once per value (e.g. 1,4) instead of with config.share_negatives.")
flags.DEFINE_string("workdir", "runs/word2vec_speed", "Where the corpus file and each run's vectors go.")
flags.DEFINE_bool("quick", False, "A seconds-long run: 200k tokens, 20k words, 1 epoch, dim 32, 1 round.")

GENSIM_MODELS = ("sgns", "cbow", "fasttext", "fasttext_cbow")
MISSPELT_WORDS = 500


def load() -> str:
    return "load average {:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def prepare_corpus(F, c, workdir: str) -> tuple[str, str]:
    """(the corpus file both systems read, its description), written into workdir unless it is there already."""
    if F.corpus == "zipf":
        name = f"zipf-{F.tokens}-{F.zipf_words}-{F.zipf_exponent:g}.txt"
        path = os.path.join(workdir, name)
        write = lambda: generated_corpus.write_zipf_corpus(  # noqa: E731
            path, F.tokens, 0, num_words=F.zipf_words, exponent=F.zipf_exponent
        )
        what = f"zipf corpus ({F.tokens} tokens, lexicon {F.zipf_words} words, exponent {F.zipf_exponent:g})"
    else:
        if F.corpus != "generated" and not F.corpus.startswith("text:"):
            raise app.UsageError(f"--corpus={F.corpus!r}: accepted: zipf, generated, text:PATH")
        source = text_data.open_corpus(
            text_data.GENERATED if F.corpus == "generated" else F.corpus,
            num_tokens=c.num_tokens,
            tokenizer=c.tokenizer,
            lowercase=c.lowercase,
        )
        path = os.path.join(workdir, f"corpus-{hashlib.sha256(source.fingerprint.encode()).hexdigest()[:16]}.txt")
        what = source.name

        def write():
            with open(path + ".tmp", "w", encoding="utf-8") as f:
                f.writelines(" ".join(tokens) + "\n" for tokens in source.tokens() if tokens)
            os.replace(path + ".tmp", path)

    if not os.path.exists(path):
        t0 = time.perf_counter()
        write()
        print(f"wrote {what} to {path} in {time.perf_counter() - t0:.1f} s (not part of any run)", flush=True)
    return path, what


def run_one(system: str, spec: dict, out: str) -> dict:
    """One worker process: its result.json with the end-to-end seconds, the phases, CPU seconds and peak RSS."""
    os.makedirs(out, exist_ok=True)
    for stale in ("result.json", "vectors.bin"):
        if os.path.exists(os.path.join(out, stale)):
            os.remove(os.path.join(out, stale))
    spec = {**spec, "out": out}
    spec_path = os.path.join(out, "spec.json")
    with open(spec_path, "w", encoding="utf-8") as f:
        json.dump(spec, f)
    cmd = [sys.executable, "-m", "benchmarks.word2vec_worker", system, spec_path]
    with open(os.path.join(out, "log.txt"), "w", encoding="utf-8") as log:
        spawned = time.time()
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)  # this child's own peak RSS, not the largest child's so far
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        with open(os.path.join(out, "log.txt"), encoding="utf-8") as f:
            raise RuntimeError(f"{system} run failed (exit {proc.returncode}):\n{f.read()[-3000:]}")
    with open(os.path.join(out, "result.json"), encoding="utf-8") as f:
        r = json.load(f)
    m = r["marks"]
    return dict(
        r,
        end_to_end=m["written"] - spawned,
        startup=m["imported"] - spawned,
        counting=m["counted"] - m["imported"],
        compiling=m["compiled"] - m["counted"],
        training=m["trained"] - m["compiled"],
        writing=m["written"] - m["trained"],
        words_per_sec=r["trained_words"] / max(m["trained"] - m["compiled"], 1e-9),
        cpu_secs=usage.ru_utime + usage.ru_stime,
        peak_rss=usage.ru_maxrss * 1024,
        vectors=os.path.join(out, "vectors.bin"),
    )


def quality(path: str, F, c, eval_sets) -> dict:
    """analogy accuracy and similarity Spearman of the vectors at path, the same scoring for both systems."""
    from train.data.vectors import WordVectors
    from train.evaluation import words as word_eval
    from zoo import word_vectors
    from zoo.text import Vocab

    kv = WordVectors.load_word2vec_format(path, binary=True)
    if eval_sets is not None:  # the planted sets (or the user's files) through the project's evaluation
        figures = word_eval.evaluate_vectors(kv.vectors, Vocab(kv.index_to_key), *eval_sets)
        return {
            "analogy": figures.get("analogy_accuracy", math.nan),
            "spearman": figures.get("wordsim_spearman", math.nan),
            "questions": figures["analogy_questions"],
            "pairs": figures["wordsim_pairs"],
        }
    analogies, pairs = gensim_test_files(c)
    out = {"analogy": math.nan, "spearman": math.nan, "questions": 0, "pairs": 0}
    if analogies:
        score, sections = kv.evaluate_word_analogies(analogies)
        out["questions"] = len(sections[-1]["correct"]) + len(sections[-1]["incorrect"])
        out["analogy"] = score if out["questions"] else math.nan
    if pairs:
        try:
            _, spearman, oov = kv.evaluate_word_pairs(pairs)
            out["spearman"] = float(spearman[0])
            with open(pairs, encoding="utf-8") as f:
                listed = len(word_vectors.parse_wordsim(f, lowercase=False, delimiter="\t"))
            out["pairs"] = round(listed * (1 - oov / 100))
        except ValueError:  # fewer than 2 pairs in the vocabulary
            pass
    return out


def misspelling(word: str) -> str:
    """The word with its two middle letters swapped ('kingdom' -> 'kigndom'): a typo never seen."""
    i = len(word) // 2 - 1
    return word[:i] + word[i + 1] + word[i] + word[i + 2 :]


def unseen_word_similarity(directory: str) -> dict:
    """Mean cos(x_w, x_misspelt(w)) over up to MISSPELT_WORDS of the most frequent words of 5+ letters whose
    misspelling is unseen (vectors of unseen words from n-grams: train.data.vectors.load_subword_vectors), and
    the baseline mean cos(x_w, x_misspelt(w')) against the next word's misspelling."""
    import numpy as np

    from train.data.vectors import load_subword_vectors

    kv = load_subword_vectors(directory)
    words = [
        w for w in kv.index_to_key if len(w) >= 5 and w.isalpha() and misspelling(w) != w and misspelling(w) not in kv
    ][:MISSPELT_WORDS]
    if len(words) < 2:
        return {"unseen_cos": math.nan, "unseen_baseline_cos": math.nan, "unseen_words": len(words)}
    unit = lambda x: x / max(float(np.linalg.norm(x)), 1e-12)  # noqa: E731
    seen = np.array([unit(kv[w]) for w in words])
    typos = np.array([unit(kv[misspelling(w)]) for w in words])
    return {
        "unseen_cos": float(np.mean(np.sum(seen * typos, axis=1))),
        "unseen_baseline_cos": float(np.mean(np.sum(seen * np.roll(typos, 1, axis=0), axis=1))),
        "unseen_words": len(words),
    }


def gensim_test_files(c) -> tuple[str | None, str | None]:
    """config.analogies / config.wordsim, else gensim's shipped questions-words.txt and wordsim353.tsv where found."""
    found = [None, None]
    try:
        from gensim.test.utils import datapath

        found = [
            p if os.path.exists(p) else None for p in (datapath("questions-words.txt"), datapath("wordsim353.tsv"))
        ]
    except ImportError:
        pass
    return c.analogies or found[0], c.wordsim or found[1]


def median(runs, key):
    values = [r[key] for r in runs if r.get(key) is not None and not math.isnan(r[key])]
    return statistics.median(values) if values else math.nan


def row(cells) -> str:
    return "| " + " | ".join(cells) + " |"


def main(_):
    F = flags.FLAGS
    c = F.config
    rounds = F.rounds
    if F.quick:
        F.tokens, F.zipf_words, c.num_tokens, c.num_epochs, c.embed_dim, rounds = 200_000, 20_000, 200_000, 1, 32, 1
    train_word2vec.SCHEMA.check(c)
    workdir = os.path.abspath(F.workdir)
    os.makedirs(workdir, exist_ok=True)
    path, what = prepare_corpus(F, c, workdir)
    from train.evaluation import words as word_eval

    # the planted sets (or config.analogies / config.wordsim) on the generated corpora; on a user's text, None:
    # gensim's evaluators through WordVectors (gensim_test_files)
    eval_sets = word_eval.load_eval_sets(c) if F.corpus in ("zipf", "generated") else None
    systems = [
        (f"ours (share_negatives {g})" if F.share_negatives else "ours", "ours", {**c.to_dict(), "share_negatives": g})
        for g in ([int(g) for g in F.share_negatives] or [c.share_negatives])
    ]
    for _, _, cfg in systems:
        check = train_word2vec.get_config()
        check.share_negatives = cfg["share_negatives"]
        train_word2vec.SCHEMA.check(check)
    if F.gensim:
        try:
            import gensim  # noqa: F401

            if c.model in GENSIM_MODELS:
                systems.append((f"gensim ({F.gensim_workers} workers, {F.gensim_input})", "gensim", c.to_dict()))
            else:
                print(f"gensim has no {c.model} (a full softmax): skipping it")
        except ImportError:
            print("gensim is not installed (pip install gensim): skipping it")
    print(
        f"{what}; {c.model}, dim {c.embed_dim}, window {c.window}, negatives {c.negatives}, min_count {c.min_count}, "
        f"sample {c.subsample}, {c.num_epochs} epochs; {rounds} round(s); {os.cpu_count()} CPUs, {load()}",
        flush=True,
    )
    runs = []
    for r in range(rounds):
        for s, (name, system, cfg) in enumerate(systems):
            spec = {"config": cfg, "file": path, "gensim_workers": F.gensim_workers, "gensim_input": F.gensim_input}
            result = run_one(system, spec, os.path.join(workdir, f"run-{r}-{s}"))
            runs.append(dict(result, name=name, system=system, round=r))
            print(f"round {r + 1}, {name}: {result['end_to_end']:.1f} s end to end; {load()}", flush=True)
    for result in runs:
        result.update(quality(result["vectors"], F, c, eval_sets))
        if c.model.startswith("fasttext"):
            result.update(unseen_word_similarity(os.path.dirname(result["vectors"])))
    print_tables(runs, systems)


def print_tables(runs, systems) -> None:
    print()
    print(
        row(
            [
                "run",
                "system",
                "vocabulary",
                "end to end s",
                "start-up s",
                "read + count s",
                "compile s",
                "train s",
                "write s",
                "train words/s",
                "CPU s",
                "peak RSS MB",
                "analogy",
                "Spearman",
            ]
        )
    )
    print(row(["---"] * 14))
    for r in runs:
        print(
            row(
                [
                    str(r["round"] + 1),
                    r["name"],
                    f"{r['vocabulary']:,}",
                    f"{r['end_to_end']:.1f}",
                    f"{r['startup']:.1f}",
                    f"{r['counting']:.1f}",
                    f"{r['compiling']:.1f}",
                    f"{r['training']:.1f}",
                    f"{r['writing']:.1f}",
                    f"{r['words_per_sec']:,.0f}",
                    f"{r['cpu_secs']:.1f}",
                    f"{r['peak_rss'] / 2**20:,.0f}",
                    f"{r['analogy']:.3f}",
                    f"{r['spearman']:.3f}",
                ]
            )
        )
    print()
    keys = ("end_to_end", "words_per_sec", "peak_rss", "analogy", "spearman")
    medians = {name: {k: median([r for r in runs if r["name"] == name], k) for k in keys} for name, _, _ in systems}
    print(row(["medians", "end to end s", "train words/s", "peak RSS MB", "analogy", "Spearman"]))
    print(row(["---"] * 6))
    for name, m in medians.items():
        print(
            row(
                [
                    name,
                    f"{m['end_to_end']:.1f}",
                    f"{m['words_per_sec']:,.0f}",
                    f"{m['peak_rss'] / 2**20:,.0f}",
                    f"{m['analogy']:.3f}",
                    f"{m['spearman']:.3f}",
                ]
            )
        )
    if "unseen_cos" in runs[0]:
        print()
        print(row(["unseen words", "cos(word, its misspelling)", "cos(word, another's misspelling)", "words"]))
        print(row(["---"] * 4))
        for r in runs:
            cells = [f"{r['unseen_cos']:.3f}", f"{r['unseen_baseline_cos']:.3f}", str(r["unseen_words"])]
            print(row([f"{r['name']} (round {r['round'] + 1})", *cells]))
    print(
        f"\nquality on {runs[0]['questions']:,} analogy questions and {runs[0]['pairs']:,} similarity pairs "
        "(those with every word in the first run's vocabulary)"
    )
    theirs = [medians[name] for name, system, _ in systems if system == "gensim"]
    if theirs:
        g = theirs[0]
        print()
        for name, system, _ in systems:
            if system == "ours":
                m = medians[name]
                print(
                    f"ratio {name} / gensim: end-to-end speed {g['end_to_end'] / m['end_to_end']:.2f}x (gensim s / "
                    f"ours s), training words/s {m['words_per_sec'] / g['words_per_sec']:.2f}x, peak RSS "
                    f"{m['peak_rss'] / g['peak_rss']:.2f}x, analogy {m['analogy'] - g['analogy']:+.3f}, Spearman "
                    f"{m['spearman'] - g['spearman']:+.3f}"
                )


if __name__ == "__main__":
    app.run(main)
