"""`turbopump pack --tokens` and turbopump.pack_tokens: token datasets from JSON Lines,
.npy and raw .bin streams (with and without a separator) and Megatron-LM indexed datasets
written here by an independent MMIDIDX writer, every id and document boundary compared
with the input as NumPy reads it, and the output read by a reader of the .tpt format
written here too; --append-eos; bad lines skipped with warnings, or --strict failing
and leaving nothing; the stored dtype; verify catching a flipped byte. Run by
tests/python/run.sh with the package built."""
import json
import os
import struct
import subprocess

import numpy as np
import pytest

import turbopump

TP = os.environ["TURBOPUMP"]
EOT = 50256
rng = np.random.default_rng(7)


def run(*args, check=0):
    p = subprocess.run([TP, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True)
    assert p.returncode == check, p.stderr
    return p


def pack(*args, check=0):
    return run("pack", "--tokens", *args, check=check)


def warnings(p):
    return [l for l in p.stderr.splitlines() if "warning: skipping" in l]


def read_tokens(ds):
    """The dataset as its files hold it (docs/FORMAT.md): (manifest, ids, document starts)."""
    with open(os.path.join(ds, "manifest.json")) as f:
        m = json.load(f)
    dtype = np.dtype("<u2" if m["dtype"] == "uint16" else "<u4")
    ids, starts = [], []
    for s in m["shards"]:
        with open(os.path.join(ds, s["file"]), "rb") as f:
            blob = f.read()
        assert blob[:8] == b"TPTOKEN1" and len(blob) == s["bytes"]
        tokens, docs = struct.unpack_from("<QQ", blob, 40)
        data_at, index_at = struct.unpack_from("<QQ", blob, 56)
        assert (tokens, docs, data_at) == (s["tokens"], s["documents"], 4096)
        ids.append(np.frombuffer(blob, dtype, tokens, data_at))
        blocks = -(-tokens // m["block_tokens"])
        index = np.frombuffer(blob, "<u8", blocks + docs, index_at)
        starts.extend((index[blocks:] + s["first_token"]).tolist())
    ids = np.concatenate(ids)
    assert len(ids) == m["tokens"] and len(starts) == m["documents"]
    return m, ids, starts


def expect(ds, documents, dtype=None):
    """The dataset holds exactly `documents` (arrays of ids), in order."""
    m, ids, starts = read_tokens(ds)
    want = np.concatenate([np.asarray(d, dtype=np.int64) for d in documents])
    assert np.array_equal(ids.astype(np.int64), want)
    assert starts == np.cumsum([0] + [len(d) for d in documents[:-1]]).tolist()
    assert m["max_id"] == int(want.max())
    if dtype:
        assert m["dtype"] == dtype
    # the reader's view agrees: inspect --tokens over a span crossing documents
    n = min(len(want), 500)
    got = json.loads(run("inspect", ds, "--tokens", "0:%d" % n, "--json").stdout)
    assert got["ids"] == want[:n].tolist()
    assert [d["start"] for d in got["documents"]] == [s for s in starts if s < n]
    return m


def random_docs(n, vocab=EOT + 1, longest=300):
    return [rng.integers(0, vocab, rng.integers(1, longest)) for _ in range(n)]


def write_jsonl(path, docs, field="input_ids", extra=()):
    with open(path, "w") as f:
        for d in docs:
            f.write(json.dumps({"text": "x", field: [int(v) for v in d]}) + "\n")
        for line in extra:
            f.write(line + "\n")


def test_jsonl_files_in_path_order(tmp_path):
    a, b = random_docs(120), random_docs(80)
    write_jsonl(tmp_path / "b.jsonl", b)
    write_jsonl(tmp_path / "a.jsonl", a, extra=["", '{"input_ids": []}'])
    p = pack(tmp_path / "b.jsonl", tmp_path / "a.jsonl", tmp_path / "ds")
    assert "first pass" in p.stderr and "storing uint16" in p.stderr
    assert "packed 200 documents" in p.stdout and "1 empty document" in p.stdout
    expect(tmp_path / "ds", a + b, "uint16")
    # a directory and a glob give the same documents, and the same bytes for the same inputs
    pack(tmp_path, tmp_path / "ds2")
    expect(tmp_path / "ds2", a + b)
    pack(str(tmp_path / "*.jsonl"), tmp_path / "ds3")
    pack(str(tmp_path / "*.jsonl"), tmp_path / "ds4")
    for f in os.listdir(tmp_path / "ds3"):
        assert (tmp_path / "ds3" / f).read_bytes() == (tmp_path / "ds4" / f).read_bytes(), f


def test_jsonl_output_and_warnings_independent_of_jobs(tmp_path):
    # several batches of lines per thread, bad lines among them
    docs = random_docs(4000, longest=600)
    with open(tmp_path / "in.jsonl", "w") as f:
        for i, d in enumerate(docs):
            f.write(json.dumps({"input_ids": d.tolist()}) + "\n")
            if i % 500 == 7:
                f.write('{"input_ids": [1, "x"]}\n')
    outs = []
    for jobs in (1, 2, 5):
        p = pack(tmp_path / "in.jsonl", tmp_path / ("j%d" % jobs), "--jobs", jobs,
                 "--vocab-size", EOT + 1)
        outs.append((warnings(p), {f: (tmp_path / ("j%d" % jobs) / f).read_bytes()
                                   for f in os.listdir(tmp_path / ("j%d" % jobs))}))
    assert len(outs[0][0]) == 8
    assert all(o == outs[0] for o in outs)
    expect(tmp_path / "j5", docs, "uint16")


def test_jsonl_field_and_bad_lines(tmp_path):
    docs = random_docs(30)
    bad = ['{"ids": [1, 2.5]}', '{"ids": [3, -1]}', '{"other": [1]}', "not json",
           '{"ids": "123"}', '{"ids": [70000]}', '[1, 2]', '{"ids": [1, true]}']
    write_jsonl(tmp_path / "in.jsonl", docs[:10], field="ids", extra=bad)
    with open(tmp_path / "in.jsonl", "a") as f:
        for d in docs[10:]:
            f.write(json.dumps({"ids": d.tolist()}) + "\n")
    p = pack(tmp_path / "in.jsonl", tmp_path / "ds", "--field", "ids", "--vocab-size", EOT + 1)
    w = warnings(p)
    assert len(w) == len(bad), p.stderr
    for i, line in enumerate(w):
        assert "in.jsonl line %d" % (11 + i) in line, line
    assert "70000" in w[5] and "above the largest id 50256" in w[5]
    assert "negative" in w[1] and "no member 'ids'" in w[2] and "malformed JSON" in w[3]
    assert "%d bad lines" % len(bad) in p.stdout
    expect(tmp_path / "ds", docs, "uint16")
    # --strict: the first bad line fails the run and nothing is left behind
    p = pack(tmp_path / "in.jsonl", tmp_path / "strict", "--field", "ids", "--strict",
             check=1)
    assert "in.jsonl line 11" in p.stderr and "--strict" in p.stderr
    assert not os.path.exists(tmp_path / "strict")
    assert not os.path.exists(tmp_path / "strict.partial")
    # the wrong member everywhere: no documents at all
    p = pack(tmp_path / "in.jsonl", tmp_path / "none", check=1)
    assert "no documents" in p.stderr and not os.path.exists(tmp_path / "none")


def test_append_eos(tmp_path):
    docs = random_docs(40, vocab=EOT)
    docs[3] = np.append(docs[3], EOT)  # already ends with it: not doubled
    write_jsonl(tmp_path / "in.jsonl", docs)
    pack(tmp_path / "in.jsonl", tmp_path / "ds", "--append-eos", EOT, "--vocab-size", EOT + 1)
    want = [d if d[-1] == EOT else np.append(d, EOT) for d in docs]
    assert len(want[3]) == len(docs[3])
    expect(tmp_path / "ds", want, "uint16")
    pack(tmp_path / "in.jsonl", tmp_path / "no", "--append-eos", 10, "--vocab-size", 10,
         check=2)


def split_after(ids, sep):
    """Documents of a stream cut after each separator (kept), as numpy sees them."""
    cuts = np.flatnonzero(ids == sep) + 1
    parts = np.split(ids, cuts)
    return [p for p in parts if len(p)]


@pytest.mark.parametrize("dtype", ["uint16", "uint32", "int32", "int64"])
def test_npy_with_and_without_separator(tmp_path, dtype):
    docs = [np.append(rng.integers(0, EOT, rng.integers(0, 200)), EOT) for _ in range(60)]
    ids = np.concatenate(docs + [rng.integers(0, EOT, 17)]).astype(dtype)  # an open tail
    np.save(tmp_path / "a.npy", ids)
    np.save(tmp_path / "b.npy", ids[::-1].copy())
    stored = "uint16" if dtype == "uint16" else "uint32"
    pack(tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "sep", "--separator", EOT)
    want = split_after(np.load(tmp_path / "a.npy"), EOT) + split_after(
        np.load(tmp_path / "b.npy"), EOT)
    expect(tmp_path / "sep", want, stored)
    # without a separator each file is one document
    pack(tmp_path / "a.npy", tmp_path / "b.npy", tmp_path / "whole")
    expect(tmp_path / "whole", [np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")],
           stored)


def test_npy_refusals(tmp_path):
    np.save(tmp_path / "neg.npy", np.array([1, -2, 3], dtype=np.int32))
    p = pack(tmp_path / "neg.npy", tmp_path / "ds", check=1)
    assert "neg.npy: token 1 is -2, negative" in p.stderr
    np.save(tmp_path / "f.npy", np.zeros(4, dtype=np.float32))
    p = pack(tmp_path / "f.npy", tmp_path / "ds", check=1)
    assert "f.npy" in p.stderr
    np.save(tmp_path / "two.npy", np.zeros((2, 3), dtype=np.uint16))
    p = pack(tmp_path / "two.npy", tmp_path / "ds", check=1)
    assert "1-D" in p.stderr
    np.save(tmp_path / "big.npy", np.array([1, 2, 300], dtype=np.uint16))
    p = pack(tmp_path / "big.npy", tmp_path / "ds", "--vocab-size", 300, check=1)
    assert "token 2 is 300, above the largest id 299" in p.stderr
    assert not os.path.exists(tmp_path / "ds")


def test_bin_streams_in_chunks(tmp_path):
    # more ids than one read (4M) so documents run across chunk edges
    n = 5_000_000
    ids = rng.integers(0, EOT, n, dtype=np.uint16)
    ids[rng.integers(0, n, 300)] = EOT
    ids.tofile(tmp_path / "big.bin")
    p = pack(tmp_path / "big.bin", tmp_path / "ds", check=1)
    assert "--dtype" in p.stderr
    pack(tmp_path / "big.bin", tmp_path / "ds", "--dtype", "uint16", "--separator", EOT,
         "--shard-size", "4M")
    m = expect(tmp_path / "ds", split_after(np.fromfile(tmp_path / "big.bin", "<u2"), EOT),
               "uint16")
    assert len(m["shards"]) > 2
    # one document of every id: longer than a read, in one shard however large
    pack(tmp_path / "big.bin", tmp_path / "one", "--dtype", "uint16", "--shard-size", "1M")
    m = expect(tmp_path / "one", [np.fromfile(tmp_path / "big.bin", "<u2")], "uint16")
    assert len(m["shards"]) == 1
    # uint32 streams; a size that is not a whole number of ids
    wide = rng.integers(0, 200000, 1000).astype("<u4")
    wide.tofile(tmp_path / "wide.bin")
    pack(tmp_path / "wide.bin", tmp_path / "wide", "--dtype", "uint32")
    expect(tmp_path / "wide", [wide], "uint32")
    p = pack(tmp_path / "wide.bin", tmp_path / "w16", "--dtype", "uint16",
             "--vocab-size", 1000, check=1)
    assert "wide.bin: token" in p.stderr and not os.path.exists(tmp_path / "w16")
    with open(tmp_path / "odd.bin", "wb") as f:
        f.write(b"\x01\x00\x02")
    p = pack(tmp_path / "odd.bin", tmp_path / "odd", "--dtype", "uint16", check=1)
    assert "not a whole number" in p.stderr


MEGATRON_CODES = {np.uint8: 1, np.int8: 2, np.int16: 3, np.int32: 4, np.int64: 5,
                  np.float64: 6, np.float32: 7, np.uint16: 8}


def write_megatron(prefix, documents, dtype=np.uint16):
    """An indexed dataset as megatron/core/datasets/indexed_dataset.py lays it out:
    .bin the sequences back to back; .idx "MMIDIDX\\0\\0", u64 version 1, u8 dtype code,
    u64 sequence count, u64 document index count, int32 lengths, int64 byte pointers,
    int64 document indices (0, then the sequence count after each document)."""
    lengths, pointers, doc_index, at = [], [], [0], 0
    with open(str(prefix) + ".bin", "wb") as f:
        for doc in documents:
            for seq in doc:
                a = np.asarray(seq, dtype=dtype)
                f.write(a.tobytes())
                lengths.append(len(a))
                pointers.append(at)
                at += a.nbytes
            doc_index.append(len(lengths))
    with open(str(prefix) + ".idx", "wb") as f:
        f.write(b"MMIDIDX\x00\x00")
        f.write(struct.pack("<Q", 1))
        f.write(struct.pack("<B", MEGATRON_CODES[dtype]))
        f.write(struct.pack("<Q", len(lengths)))
        f.write(struct.pack("<Q", len(doc_index)))
        f.write(np.array(lengths, dtype=np.int32).tobytes())
        f.write(np.array(pointers, dtype=np.int64).tobytes())
        f.write(np.array(doc_index, dtype=np.int64).tobytes())


def read_megatron(prefix):
    """The documents of an indexed dataset, read back with numpy."""
    idx = open(str(prefix) + ".idx", "rb").read()
    _, code, nseq, ndoc = struct.unpack_from("<QBQQ", idx, 9)
    dtype = {v: k for k, v in MEGATRON_CODES.items()}[code]
    lengths = np.frombuffer(idx, np.int32, nseq, 34)
    pointers = np.frombuffer(idx, np.int64, nseq, 34 + 4 * nseq)
    doc_index = np.frombuffer(idx, np.int64, ndoc, 34 + 12 * nseq)
    data = np.fromfile(str(prefix) + ".bin", dtype=np.uint8)
    size = np.dtype(dtype).itemsize
    docs = []
    for d in range(ndoc - 1):
        seqs = [data[pointers[s]:pointers[s] + lengths[s] * size].view(dtype)
                for s in range(doc_index[d], doc_index[d + 1])]
        docs.append(np.concatenate(seqs) if seqs else np.zeros(0, dtype))
    return docs


@pytest.mark.parametrize("dtype,stored", [(np.uint16, "uint16"), (np.int32, "uint32"),
                                          (np.int64, "uint32")])
def test_megatron_indexed_dataset(tmp_path, dtype, stored):
    docs = [[rng.integers(0, EOT, rng.integers(0, 50)) for _ in range(rng.integers(0, 5))]
            for _ in range(80)]
    docs[5] = []  # a document of no sequences
    write_megatron(tmp_path / "corpus_text_document", docs, dtype)
    want = read_megatron(tmp_path / "corpus_text_document")
    empty = sum(1 for d in want if len(d) == 0)
    assert empty > 0
    outs = []
    for i, name in enumerate(["corpus_text_document", "corpus_text_document.idx",
                              "corpus_text_document.bin"]):
        p = pack(tmp_path / name, tmp_path / ("ds%d" % i))
        assert "skipped %d empty document" % empty in p.stdout
        expect(tmp_path / ("ds%d" % i), [d for d in want if len(d)], stored)
        outs.append(read_tokens(tmp_path / ("ds%d" % i))[1])
    assert all(np.array_equal(outs[0], o) for o in outs)
    # a directory holding the pair packs it once
    pack(tmp_path, tmp_path / "dir", "--vocab-size", EOT + 1)
    expect(tmp_path / "dir", [d for d in want if len(d)], "uint16")


def test_megatron_damaged_index(tmp_path):
    write_megatron(tmp_path / "c", [[[1, 2, 3]], [[4, 5]]])
    idx = bytearray(open(tmp_path / "c.idx", "rb").read())
    struct.pack_into("<q", idx, 34 + 4 * 2 + 8, 1000)  # sequence 1 far past the .bin
    open(tmp_path / "c.idx", "wb").write(bytes(idx))
    p = pack(tmp_path / "c", tmp_path / "ds", check=1)
    assert "c.idx: sequence 1" in p.stderr and not os.path.exists(tmp_path / "ds")
    open(tmp_path / "c.idx", "wb").write(b"MMIDIDX\x00\x00" + b"\x01" + b"\x00" * 7 + b"\x06")
    p = pack(tmp_path / "c", tmp_path / "ds", check=1)
    assert "c.idx" in p.stderr


def test_dtype_choice(tmp_path):
    small = [np.array([1, 2, 65535])]
    write_jsonl(tmp_path / "small.jsonl", small)
    write_jsonl(tmp_path / "large.jsonl", [np.array([1, 70000])])
    pack(tmp_path / "small.jsonl", tmp_path / "a")
    expect(tmp_path / "a", small, "uint16")
    p = pack(tmp_path / "large.jsonl", tmp_path / "b")
    assert "largest id 70000: storing uint32" in p.stderr
    pack(tmp_path / "small.jsonl", tmp_path / "c", "--vocab-size", 65536)
    expect(tmp_path / "c", small, "uint16")
    pack(tmp_path / "small.jsonl", tmp_path / "d", "--vocab-size", 65537, "--quiet")
    expect(tmp_path / "d", small, "uint32")
    p = pack(tmp_path / "small.jsonl", tmp_path / "e", "--vocab-size", 65000, check=1)
    assert len(warnings(p)) == 1 and "no documents" in p.stderr
    # an --append-eos id that needs 32 bits widens the dataset
    pack(tmp_path / "small.jsonl", tmp_path / "f", "--append-eos", 100000)
    expect(tmp_path / "f", [np.append(small[0], 100000)], "uint32")


def test_verify_detects_a_flipped_byte(tmp_path):
    docs = random_docs(200)
    write_jsonl(tmp_path / "in.jsonl", docs)
    pack(tmp_path / "in.jsonl", tmp_path / "ds", "--block-tokens", 256, "--shard-size", "16K")
    p = run("verify", tmp_path / "ds")
    assert "0 bad blocks" in p.stdout
    meta = json.loads(run("inspect", tmp_path / "ds", "--json").stdout)
    assert meta["format"] == "tokens" and meta["block_tokens"] == 256
    assert meta["shard_count"] > 1 and meta["documents"] == 200
    text = run("inspect", tmp_path / "ds").stdout
    assert "uint16" in text and "documents: 200" in text
    shard = meta["shards"][1]
    with open(shard["path"], "r+b") as f:
        f.seek(4096 + 2 * 256 * 2 + 7)  # block 2
        b = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([b[0] ^ 0x20]))
    p = run("verify", tmp_path / "ds", check=1)
    assert "shard-00001.tpt: block 2 " in p.stderr and "1 bad block" in p.stdout
    first = shard["first_token"] + 2 * 256
    p = run("inspect", tmp_path / "ds", "--tokens", "%d:3" % first, check=1)
    assert "checksum mismatch" in p.stderr


def test_pack_tokens_round_trip(tmp_path):
    docs = random_docs(50)
    kinds = [None, np.uint16, np.int32, np.int64, np.uint32, np.uint64]
    given = [d.tolist() if i % 6 == 0 else d.astype(kinds[i % 6]) for i, d in enumerate(docs)]
    given.insert(7, [])
    info = turbopump.pack_tokens(iter(given), tmp_path / "a", vocab_size=EOT + 1,
                                 shard_size=4096, block_tokens=256, source="test")
    assert info == {"documents": 50, "tokens": sum(map(len, docs)), "empty": 1,
                    "dtype": "uint16"}
    m = expect(tmp_path / "a", docs, "uint16")
    assert m["source"] == "test" and len(m["shards"]) > 1
    assert "0 bad blocks" in run("verify", tmp_path / "a").stdout
    # consumed once: without vocab_size or dtype the dataset is uint32
    assert turbopump.pack_tokens((d for d in docs), tmp_path / "b")["dtype"] == "uint32"
    expect(tmp_path / "b", docs, "uint32")
    assert turbopump.pack_tokens(docs, tmp_path / "c", dtype="uint16")["dtype"] == "uint16"
    with pytest.raises(Exception):
        turbopump.pack_tokens(docs, tmp_path / "c", dtype="uint16")  # exists
    turbopump.pack_tokens(docs[:2], tmp_path / "c", dtype="uint16", overwrite=True)
    expect(tmp_path / "c", docs[:2])
    # errors leave nothing: an id past the vocabulary, a failing iterable, a bad id
    with pytest.raises(ValueError, match="document 1: id"):
        turbopump.pack_tokens([[1], [5, EOT + 1]], tmp_path / "d", vocab_size=EOT + 1)

    def failing():
        yield [1, 2]
        raise RuntimeError("tokenizer failed")
    with pytest.raises(RuntimeError):
        turbopump.pack_tokens(failing(), tmp_path / "d")
    with pytest.raises(ValueError, match="document 0"):
        turbopump.pack_tokens([[1, -1]], tmp_path / "d")
    with pytest.raises(TypeError):
        turbopump.pack_tokens([[1.5]], tmp_path / "d")
    with pytest.raises(ValueError):
        turbopump.pack_tokens([[70000]], tmp_path / "d", dtype="uint16")
    assert not os.path.exists(tmp_path / "d") and not os.path.exists(tmp_path / "d.partial")
