"""The embedded model's KV-cache prefix reuse against determinism: a ~2,600-token conversation answered cold,
then warm (prefix cached), on a server with prompt caching on; then twice on a server with it off. Prints the
times, the warm/cold ratio, and whether answers repeat.

    .venv/bin/python benchmarks/local_prefix_cache.py
"""

from __future__ import annotations

import time

from mislab.models import get_model

FILLER = " ".join(f"Fact {i}: the number {i} is {'even' if i % 2 == 0 else 'odd'}." for i in range(320))


def ask(model, question: str) -> tuple[str, float]:
    messages = [{"role": "system", "content": "Answer briefly.\n" + FILLER}, {"role": "user", "content": question}]
    started = time.perf_counter()
    c = model.generate_sync(messages, temperature=0, seed=1, max_tokens=24)
    return c.text, time.perf_counter() - started


def main() -> None:
    cached = get_model("local", cache=False)
    _, cold = ask(cached, "Is 17 even or odd?")
    text_warm, warm = ask(cached, "Is 18 even or odd?")
    text_warm2, _ = ask(cached, "Is 18 even or odd?")
    print(f"cache_prompt on: cold {cold:.1f} s, warm {warm:.1f} s, speed-up {cold / warm:.1f}x")
    print(f"  same answer twice with a warm prefix: {text_warm == text_warm2}")
    fresh = get_model("local", cache=False, local_options={"cache_prompt": False})
    a, t1 = ask(fresh, "Is 18 even or odd?")
    b, t2 = ask(fresh, "Is 18 even or odd?")
    print(f"cache_prompt off: {t1:.1f} s and {t2:.1f} s; same answer twice: {a == b}; same as warm: {a == text_warm}")


if __name__ == "__main__":
    main()
