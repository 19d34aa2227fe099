"""`siamgpt-jax generate`: a JSONL of prompts -> a JSONL of responses, with the in-process sampler.

Each input line is an object with `messages` (chat, rendered with the loader's ChatML template) or
`prompt` (raw text); other keys are kept. Each output line is the input plus `line` (its 1-based
line number in --prompts), `response`, `finish_reason`, `prompt_tokens`, `completion_tokens`
(and `token_logprobs` with --logprobs, `error` when the model could not answer it).

Every prompt line is read, rendered and checked against the cache before anything is generated,
so a bad line stops the run at once with FILE:LINE. --out is append-only and flushed per line:
a rerun skips the lines already there, so an interrupted run loses nothing.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from siamgpt_jax.errors import UserError
from siamgpt_jax.generate.backend import GenerationRequest, SamplingParams


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", required=True, help="HF folder, training run folder or checkpoint step folder")
    parser.add_argument("--prompts", required=True, help="JSONL: one object with 'messages' or 'prompt' per line")
    parser.add_argument("--out", required=True, help="JSONL of responses (appended; lines already there are skipped)")
    add_sampling_arguments(parser)
    parser.add_argument("--enable-thinking", action="store_true", help="render chat prompts without Qwen3's empty think block")
    parser.add_argument("--batch-size", type=int, default=16, help="prompts per batch (default 16)")
    parser.add_argument("--max-len", type=int, default=None,
                        help="cache length: prompt + new tokens (default: the model's max_position_embeddings)")
    parser.add_argument("--truncate", action="store_true", help="keep the last tokens of a prompt that does not fit, instead of failing")
    parser.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32", help="compute dtype (default float32)")
    parser.add_argument("--tensor-parallel", type=int, default=1, help="split the model and KV cache over this many devices")
    parser.add_argument("--tokenizer", default=None, help="a tokenizer folder (default: the model's, else Qwen3's)")
    parser.add_argument("--no-progress", action="store_true")


def add_sampling_arguments(parser: argparse.ArgumentParser) -> None:
    d = SamplingParams()
    parser.add_argument("--max-new-tokens", type=int, default=d.max_new_tokens)
    parser.add_argument("--temperature", type=float, default=d.temperature, help="0 = greedy (default)")
    parser.add_argument("--top-k", type=int, default=d.top_k, help="0 = off")
    parser.add_argument("--top-p", type=float, default=d.top_p, help="1.0 = off")
    parser.add_argument("--seed", type=int, default=d.seed, help="per-line seed = seed + line number (or the line's own 'seed')")
    parser.add_argument("--stop", action="append", default=[], help="a stop string (repeatable)")
    parser.add_argument("--logprobs", action="store_true", help="write each generated token's logprob")


def sampling_from_args(args, line_seed: int) -> SamplingParams:
    try:
        return SamplingParams(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_k=args.top_k,
                              top_p=args.top_p, seed=line_seed, stop=tuple(args.stop), logprobs=args.logprobs)
    except ValueError as e:
        raise UserError(f"sampling flags: {e}") from None


def read_prompts(path: Path, args) -> list[tuple[int, dict, GenerationRequest]]:
    """(line number, record, request) for every non-blank line; a bad line is a UserError naming it."""
    if not path.is_file():
        raise UserError(f"{path}: no such prompts file")
    out = []
    with open(path, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if not text.strip():
                continue
            where = f"{path}:{n}"
            try:
                rec = json.loads(text)
            except json.JSONDecodeError as e:
                raise UserError(f"{where}: not valid JSON ({e.msg} at column {e.colno})") from None
            if not isinstance(rec, dict) or (("messages" in rec) == ("prompt" in rec)):
                raise UserError(f"{where}: a line needs exactly one of 'messages' or 'prompt'")
            if "prompt" in rec and not isinstance(rec["prompt"], str):
                raise UserError(f"{where}: 'prompt' must be a string")
            seed = rec.get("seed", args.seed + n)
            if not isinstance(seed, int):
                raise UserError(f"{where}: 'seed' must be an integer")
            messages = rec.get("messages")
            if messages is not None and not (isinstance(messages, list) and all(isinstance(m, dict) for m in messages)):
                raise UserError(f"{where}: 'messages' must be a list of objects with 'role' and 'content'")
            req = GenerationRequest(messages=messages, prompt=rec.get("prompt"), sampling=sampling_from_args(args, seed),
                                    enable_thinking=args.enable_thinking)
            out.append((n, rec, req))
    return out


def done_lines(out_path: Path) -> set[int]:
    """Input line numbers already answered in --out. A last line cut short by an interrupt is
    removed (it was never complete); any other unreadable line is an error."""
    if not out_path.exists():
        return set()
    raw = out_path.read_bytes()
    if raw and not raw.endswith(b"\n"):
        keep = raw.rfind(b"\n") + 1
        with open(out_path, "r+b") as f:
            f.truncate(keep)
        print(f"  {out_path}: dropped an incomplete last line (interrupted write); it will be generated again")
        raw = raw[:keep]
    done = set()
    for n, text in enumerate(raw.decode("utf-8").splitlines(), 1):
        if not text.strip():
            continue
        try:
            done.add(int(json.loads(text)["line"]))
        except (json.JSONDecodeError, KeyError, TypeError, ValueError):
            raise UserError(f"{out_path}:{n}: not a line this command wrote (no 'line' key); use another --out") from None
    return done


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from siamgpt_jax.generate.jax_backend import JaxBackend, tensor_parallel_mesh
    from siamgpt_jax.generate.prompts import PromptTooLongError

    prompts_path, out_path = Path(args.prompts), Path(args.out)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1, got {args.batch_size}")
    records = read_prompts(prompts_path, args)
    done = done_lines(out_path)
    todo = [r for r in records if r[0] not in done]
    print(f"{len(records)} prompts in {prompts_path}; {len(records) - len(todo)} already in {out_path}, {len(todo)} to generate")
    if not todo:
        return 0

    model_path = Path(args.model)
    backend = JaxBackend.from_path(model_path, tokenizer=args.tokenizer, dtype=args.dtype, mesh=tensor_parallel_mesh(args.tensor_parallel) if args.tensor_parallel > 1 else None,
                                   max_batch=args.batch_size, max_len=args.max_len, truncate=args.truncate)
    for n, _, req in todo:  # render and size every prompt before generating any
        try:
            backend.prompt_ids(req, where=f"{prompts_path}:{n}")
        except PromptTooLongError as e:
            raise UserError(f"{e}; or pass --truncate") from None
        except ValueError as e:
            raise UserError(str(e)) from None

    out_path.parent.mkdir(parents=True, exist_ok=True)
    errors = new_tokens = 0
    start = time.perf_counter()
    with open(out_path, "a", encoding="utf-8") as out, \
            tqdm(total=len(todo), unit="prompt", desc="generate", disable=args.no_progress) as bar:
        for i in range(0, len(todo), args.batch_size):
            batch = todo[i : i + args.batch_size]
            for (n, rec, _), gen in zip(batch, backend.generate([r[2] for r in batch])):
                row = dict(rec, line=n, response=gen.text, finish_reason=gen.finish_reason,
                           prompt_tokens=gen.prompt_tokens, completion_tokens=gen.completion_tokens)
                if gen.token_logprobs is not None:
                    row["token_logprobs"] = list(gen.token_logprobs)
                if gen.error:
                    row["error"] = gen.error
                    errors += 1
                new_tokens += gen.completion_tokens
                out.write(json.dumps(row, ensure_ascii=False) + "\n")
                out.flush()
            bar.update(len(batch))
            bar.set_postfix_str(f"{new_tokens / (time.perf_counter() - start):.1f} new tok/s")
    backend.close()
    seconds = time.perf_counter() - start
    print(f"wrote {len(todo)} responses to {out_path}: {new_tokens} new tokens in {seconds:.1f}s "
          f"({new_tokens / seconds:.1f} tok/s)" + (f"; {errors} failed (see their 'error')" if errors else ""))
    return 1 if errors else 0
