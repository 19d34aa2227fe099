"""The AutoIF run's settings. Thresholds default to QwenLM/AutoIF's published choices where it has one."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from siamgpt_jax.corpus.verify import STABILITY_CHECKS
from siamgpt_jax.generate.backend import SamplingParams


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.7
    top_p: float = 0.95
    max_new_tokens: int = 1024

    def params(self, seed: int) -> SamplingParams:
        return SamplingParams(max_new_tokens=self.max_new_tokens, temperature=self.temperature, top_p=self.top_p,
                              seed=seed)


@dataclass(frozen=True)
class JudgeSampling(Sampling):
    """Judging and scoring: greedy, shorter (its own class, so `judge.x=...` keeps the other judge defaults)."""

    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 512


@dataclass(frozen=True)
class AutoIFConfig:
    out_dir: str = "runs/autoif"
    seeds: str = "data/autoif/seeds_th.jsonl"
    queries: str = "data/autoif/queries_th.jsonl"
    # functions: LLM-written verification functions, cross-validated in the sandbox (AutoIF);
    # registry: constraints from the project's verifier registry, checked deterministically, no code.
    mode: Literal["functions", "registry"] = "functions"
    backend: str = ""  # an OpenAI-compatible base URL, or a model path (HF folder, run folder, checkpoint)
    model: str = ""  # the model name at the endpoint; it also keys the request cache
    replay: bool = False  # answer only from the request cache; a miss is a recorded backend_error
    request_batch: int = 32  # requests handed to the backend at once (the HTTP client runs them concurrently)
    concurrency: int = 16  # HTTP requests in flight
    seed: int = 0

    # 2. instruction augmentation
    augment_requests: int = 4
    instructions_per_request: int = 20
    max_similarity: float = 0.7  # ROUGE-L F1 on Thai words at or above which an instruction is a near-duplicate
    registry_combinations: int = 60  # registry mode: pairs of seed constraints added as new instructions

    # 3-4. verification functions and cross-validation (AutoIF: >= 3 functions, >= 10 cases, accuracy >= 0.8)
    functions_per_instruction: int = 3
    min_functions: int = 3
    min_test_cases: int = 10
    min_function_accuracy: float = 0.8
    sandbox_seconds_per_function: float = 5.0  # AutoIF's per-call alarm
    unsafe_no_sandbox: bool = False

    # 5. back-translation: each kept function back into an instruction, judged against the original
    backtranslation: bool = True
    max_backtranslated_functions: int = 3

    # 6-7. queries and responses (AutoIF pairs 16 queries per instruction)
    queries_per_instruction: int = 16
    samples_per_prompt: int = 4
    # share of an instruction's functions a response must pass; AutoIF's code keeps any response
    # that passes one (> 0), we default to all of them: a training pair must follow its instruction
    min_response_pass_rate: float = 1.0
    stability_checks: tuple[str, ...] = STABILITY_CHECKS

    # 8. quality scoring (AutoIF keeps scores of 8 or more out of 10)
    quality_scoring: bool = False
    min_quality: float = 8.0

    generation: Sampling = field(default_factory=Sampling)
    judge: JudgeSampling = field(default_factory=JudgeSampling)
