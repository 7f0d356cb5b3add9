#!/usr/bin/env python3
"""make_meta_models.py - tiny Llama 3.x checkpoints in Meta's original layout for herd's tests.

For each (configuration, shard count) this writes OUT/<cfg>_mp<N>/:
  params.json            llama-models ModelArgs fields, derived from the same configuration
                         as tests/models/make_model.py's HF folder (so the committed goldens,
                         computed by the independent numpy reference, apply unchanged);
                         ffn_dim_multiplier / multiple_of are chosen so that Meta's FFN width
                         rule gives the configuration's width
  consolidated.NN.pth    torch.save of the state dict of model-parallel rank NN, split as
                         Meta's fairscale layers split it: wq/wk/wv/w1/w3/output on rows
                         (ColumnParallelLinear), wo/w2 on columns (RowParallelLinear),
                         tok_embeddings on columns (ParallelEmbedding), norms replicated
  tokenizer.json         the tiny tokenizer (copied from the HF folder)
Weights are Meta-layout (no q/k permutation), rounded to the configuration's dtype exactly
as the HF folder's are, so the three forms hold the same numbers.

The .pth files are written by real torch.save when torch is importable (PyPI torch, or
Debian's python3-torch: when the running Python lacks torch and /usr/bin/python3 has it, the
script re-runs itself there). Without torch anywhere, `--writer mimic` is used: Python's own
pickle.Pickler at protocol 2 with the same persistent_id / __reduce__ torch.save uses
(stand-in modules named torch and torch._utils, so GLOBAL opcodes read the same) and a zip
of stored entries whose data is 64-byte aligned by a padding extra field, as torch's
PyTorchFileWriter lays them out. `--check-mimic DIR` (needs torch) compares the mimic's
data.pkl byte for byte with torch.save's.

Also writes OUT/hostile/*.pth: files the reader must refuse (bad opcodes, globals outside
the allow-list, storage offsets past the end, compressed or truncated entries).

Usage: make_meta_models.py OUT [--writer torch|mimic|auto] [--check-mimic]
"""
import argparse
import io
import json
import os
import shutil
import struct
import sys
import types
import zipfile
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "models"))

DEBIAN_PY = "/usr/bin/python3"

# (configuration of make_model.py, model-parallel shard counts)
CASES = [("gqa8_untied_f16", [1]), ("gqa2_untied_f32", [1, 2]), ("gqa1_tied_f32", [4]),
         ("gqa4_tied_bf16", [2])]

ROW_SPLIT = ("attention.wq.weight", "attention.wk.weight", "attention.wv.weight",
             "feed_forward.w1.weight", "feed_forward.w3.weight")
COL_SPLIT = ("attention.wo.weight", "feed_forward.w2.weight")


def have_torch():
    try:
        import torch  # noqa: F401
        return True
    except ImportError:
        return False


def maybe_reexec():
    """Re-runs under Debian's Python when it has torch and numpy and this one has no torch."""
    if have_torch() or os.environ.get("HERD_META_REEXEC") or not os.path.exists(DEBIAN_PY):
        return
    if os.path.realpath(sys.executable) == os.path.realpath(DEBIAN_PY):
        return
    import subprocess
    ok = subprocess.run([DEBIAN_PY, "-c", "import torch, numpy"], stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL).returncode == 0
    if ok:
        env = dict(os.environ, HERD_META_REEXEC="1")
        os.execve(DEBIAN_PY, [DEBIAN_PY] + sys.argv, env)


def split_dim(name):
    """0 rows, 1 columns, None replicated: fairscale's split of this Meta tensor."""
    if name == "output.weight" or name.endswith(ROW_SPLIT):
        return 0
    if name == "tok_embeddings.weight" or name.endswith(COL_SPLIT):
        return 1
    return None


def shard_state(meta_store, n, k):
    """{name: storage array} of model-parallel rank k of n."""
    import numpy as np
    out = {}
    for name, arr in meta_store.items():
        d = split_dim(name)
        if d is None or n == 1:
            out[name] = arr
        else:
            out[name] = np.ascontiguousarray(np.split(arr, n, axis=d)[k])
    return out


# ---------------------------------------------------------------------------------------
# The mimic writer: torch.save's byte layout without torch.
# ---------------------------------------------------------------------------------------
STORAGE_CLASS = {"F32": "FloatStorage", "F16": "HalfStorage", "BF16": "BFloat16Storage",
                 "F8_E4M3": "Float8_e4m3fnStorage"}  # torch >= 2.1: float8_e4m3fn


def _fake_torch():
    """Stand-in modules so that pickle writes GLOBAL torch._utils._rebuild_tensor_v2 etc."""
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*a):
        raise RuntimeError("never called")
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = utils
    for cls in STORAGE_CLASS.values():
        c = type(cls, (), {})
        c.__module__ = "torch"
        setattr(torch, cls, c)
    return torch, utils


class _Storage:
    def __init__(self, key, cls, numel):
        self.key, self.cls, self.numel = key, cls, numel


class _Tensor:
    def __init__(self, storage, shape, rebuild):
        self.storage, self.shape, self.rebuild = storage, shape, rebuild

    def __reduce_ex__(self, proto):
        import collections
        stride, acc = [], 1
        for s in reversed(self.shape):
            stride.insert(0, acc)
            acc *= s
        return (self.rebuild, (self.storage, 0, tuple(self.shape), tuple(stride), False,
                               collections.OrderedDict()))


def mimic_pickle(state, dtype):
    """data.pkl bytes and [(key, bytes)] for {name: array} of one dtype (or {name: dtype})."""
    import pickle
    torch, utils = _fake_torch()
    saved = {m: sys.modules.get(m) for m in ("torch", "torch._utils")}
    sys.modules["torch"], sys.modules["torch._utils"] = torch, utils
    try:
        blobs, obj = [], {}
        for i, (name, arr) in enumerate(state.items()):
            dt = dtype if isinstance(dtype, str) else dtype[name]
            st = _Storage(str(i), getattr(torch, STORAGE_CLASS[dt]), int(arr.size))
            blobs.append((st.key, arr.tobytes()))
            obj[name] = _Tensor(st, list(arr.shape), utils._rebuild_tensor_v2)

        class P(pickle.Pickler):
            def persistent_id(self, o):
                if isinstance(o, _Storage):
                    return ("storage", o.cls, o.key, "cpu", o.numel)
                return None
        buf = io.BytesIO()
        P(buf, protocol=2).dump(obj)
        return buf.getvalue(), blobs
    finally:
        for m, v in saved.items():
            if v is None:
                sys.modules.pop(m, None)
            else:
                sys.modules[m] = v


def write_zip(path, archive, entries, method=zipfile.ZIP_STORED):
    """Stored entries with data 64-byte aligned (torch pads the local extra field)."""
    with open(path, "wb") as raw:
        with zipfile.ZipFile(raw, "w", method) as z:
            for name, data in entries:
                zi = zipfile.ZipInfo(archive + "/" + name, date_time=(1980, 1, 1, 0, 0, 0))
                zi.compress_type = method
                hdr = 30 + len(zi.filename.encode())
                pad = (-(raw.tell() + hdr + 4)) % 64
                zi.extra = struct.pack("<HH", 0x4246, pad) + b"Z" * pad  # "FB" padding field
                z.writestr(zi, data)


def mimic_save(state, dtype, path):
    pkl, blobs = mimic_pickle(state, dtype)
    archive = os.path.splitext(os.path.basename(path))[0]
    entries = [("data.pkl", pkl), ("byteorder", b"little")]
    entries += [("data/" + k, b) for k, b in blobs]
    entries.append(("version", b"3\n"))
    write_zip(path, archive, entries)


def torch_save(state, dtype, path):
    import numpy as np
    import torch
    sd = {}
    for name, arr in state.items():
        dt = dtype if isinstance(dtype, str) else dtype[name]
        if dt == "F8_E4M3":  # the e4m3 codes (uint8) as float8_e4m3fn, torch >= 2.1
            t = torch.from_numpy(np.ascontiguousarray(arr).view(np.uint8)).view(torch.float8_e4m3fn)
        elif dt == "BF16":
            t = torch.from_numpy(np.ascontiguousarray(arr).view(np.int16)).view(torch.bfloat16)
        else:
            t = torch.from_numpy(np.ascontiguousarray(arr))
        sd[name] = t.clone()
    torch.save(sd, path)


# ---------------------------------------------------------------------------------------
def params_json(hf_cfg, ffn):
    dim = hf_cfg["hidden_size"]
    h = int(2 * (4 * dim) / 3)
    p = {"dim": dim, "n_layers": hf_cfg["num_hidden_layers"],
         "n_heads": hf_cfg["num_attention_heads"],
         "n_kv_heads": hf_cfg.get("num_key_value_heads", hf_cfg["num_attention_heads"]),
         "vocab_size": hf_cfg["vocab_size"],
         # Meta's rule: int(mult * int(8 * dim / 3)) rounded up to multiple_of = ffn
         "ffn_dim_multiplier": (ffn - 0.5) / h, "multiple_of": ffn,
         "norm_eps": hf_cfg.get("rms_norm_eps", 1e-5),
         "rope_theta": hf_cfg.get("rope_theta", 10000.0)}
    rs = hf_cfg.get("rope_scaling")
    p["use_scaled_rope"] = bool(rs)
    if rs:
        assert rs["low_freq_factor"] == 1.0 and rs["original_max_position_embeddings"] == 8192
        p["rope_scaling_factor"] = rs["factor"]
        p["rope_high_freq_factor"] = rs["high_freq_factor"]
    return p


def make_case(out, models, cfg_name, n, writer):
    import make_model as mm
    cfg = mm.CONFIGS[cfg_name]
    hf_dir = os.path.join(models, cfg_name, "hf")
    with open(os.path.join(hf_dir, "config.json")) as f:
        hf_cfg = json.load(f)
    meta = mm.meta_weights(cfg)
    store = {name: mm.round_to(a, cfg["dtype"])[0] for name, a in meta.items()}
    d = os.path.join(out, "%s_mp%d" % (cfg_name, n))
    if os.path.isdir(d):
        shutil.rmtree(d)
    os.makedirs(d)
    with open(os.path.join(d, "params.json"), "w") as f:
        json.dump(params_json(hf_cfg, cfg["ffn_dim"]), f, indent=2)
    shutil.copyfile(os.path.join(hf_dir, "tokenizer.json"), os.path.join(d, "tokenizer.json"))
    save = torch_save if writer == "torch" else mimic_save
    for k in range(n):
        save(shard_state(store, n, k), cfg["dtype"], os.path.join(d, "consolidated.%02d.pth" % k))
    return d


# ---------------------------------------------------------------------------------------
# Hostile files: each must be refused with a one-line error (tests/meta/meta.cmake).
# ---------------------------------------------------------------------------------------
def hostile(out):
    import numpy as np
    d = os.path.join(out, "hostile")
    os.makedirs(d, exist_ok=True)
    state = {"tok_embeddings.weight": np.arange(12, dtype=np.float32).reshape(3, 4)}
    pkl, blobs = mimic_pickle(state, "F32")
    entries = lambda p: [("data.pkl", p)] + [("data/" + k, b) for k, b in blobs]  # noqa: E731

    def w(name, pkl_bytes, **kw):
        write_zip(os.path.join(d, name + ".pth"), "archive", entries(pkl_bytes), **kw)
    # os.system through GLOBAL + REDUCE: the classic pickle exploit
    w("global_os_system", b"\x80\x02cos\nsystem\nq\x00X\x04\x00\x00\x00trueq\x01\x85q\x02Rq\x03.")
    # builtins.eval
    w("global_eval", b"\x80\x02cbuiltins\neval\nX\x01\x00\x00\x001\x85R.")
    # an opcode torch.save never writes for tensors (INST)
    w("opcode_inst", b"\x80\x02(ios\nsystem\nX\x04\x00\x00\x00true.")
    # BINFLOAT / EMPTY_LIST / APPEND: not in a tensor state dict
    w("opcode_list", b"\x80\x02]q\x00.")
    # storage offset past the end: patch the offset BININT1 0 after the storage persid
    i = pkl.index(b"Q")
    bad = pkl[:i + 1] + b"K\x09" + pkl[i + 3:]
    assert pkl[i + 1:i + 3] == b"K\x00"
    w("offset_past_end", bad)
    # size larger than the storage
    j = pkl.index(b"K\x03K\x04")
    w("size_past_end", pkl[:j] + b"K\x05K\x04" + pkl[j + 4:])
    # non-contiguous strides
    k = pkl.index(b"K\x04K\x01")
    w("strided", pkl[:k] + b"K\x01K\x03" + pkl[k + 4:])
    # deflated entries
    w("compressed", pkl, method=zipfile.ZIP_DEFLATED)
    # truncated: cut the file in the middle of the storage
    good = os.path.join(d, "good.pth")
    write_zip(good, "archive", entries(pkl))
    with open(good, "rb") as f:
        data = f.read()
    with open(os.path.join(d, "truncated.pth"), "wb") as f:
        f.write(data[:len(data) // 2])
    # stack games: STOP on an empty stack, unbalanced MARK, memo key never stored
    w("empty_stop", b"\x80\x02.")
    w("bad_memo", b"\x80\x02h\x07.")
    w("pickle_no_stop", pkl[:-1])
    # not a zip at all
    with open(os.path.join(d, "not_zip.pth"), "wb") as f:
        f.write(b"\x80\x02}q\x00." + b"\x00" * 64)
    # the storage points outside: storage key naming a missing entry
    w("missing_storage", pkl.replace(b"X\x01\x00\x00\x000", b"X\x01\x00\x00\x009", 1))
    # each as a folder herd can be pointed at
    for fn in sorted(os.listdir(d)):
        if not fn.endswith(".pth"):
            continue
        md = os.path.join(d, fn[:-4])
        os.makedirs(md, exist_ok=True)
        shutil.copyfile(os.path.join(d, fn), os.path.join(md, "consolidated.00.pth"))
        with open(os.path.join(md, "params.json"), "w") as f:
            json.dump({"dim": 4, "n_layers": 1, "n_heads": 1, "vocab_size": 3}, f)


def check_mimic(out):
    """The mimic's data.pkl equals torch.save's, byte for byte (needs torch)."""
    import numpy as np
    import torch  # noqa: F401
    state = {"a.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
             "b.weight": np.ones(4, dtype=np.float32)}
    p = os.path.join(out, "mimic_check_torch.pth")
    torch_save(state, "F32", p)
    with zipfile.ZipFile(p) as z:
        name = [n for n in z.namelist() if n.endswith("/data.pkl")][0]
        ref = z.read(name)
    mine, _ = mimic_pickle(state, "F32")
    if ref != mine:
        print("mimic data.pkl differs from torch.save's:\n%r\n%r" % (ref, mine))
        return 1
    print("mimic data.pkl equals torch.save's (%d bytes)" % len(ref))
    return 0


def main():
    maybe_reexec()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("out")
    ap.add_argument("--models", required=True, help="make_model.py's output (for the HF configs)")
    ap.add_argument("--writer", choices=("auto", "torch", "mimic"), default="auto")
    ap.add_argument("--check-mimic", action="store_true")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    if a.check_mimic:
        if not have_torch():
            print("make_meta_models: torch not installed; mimic check skipped")
            return 77
        return check_mimic(a.out)
    writer = a.writer
    if writer == "auto":
        writer = "torch" if have_torch() else "mimic"
    if writer == "torch" and not have_torch():
        ap.error("torch is not installed")
    for cfg, shards in CASES:
        for n in shards:
            d = make_case(a.out, a.models, cfg, n, writer)
            print("make_meta_models: %s (%s) -> %s" % (cfg, writer, d))
    hostile(a.out)
    with open(os.path.join(a.out, "WRITER"), "w") as f:
        f.write(writer + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
