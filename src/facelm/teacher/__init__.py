"""Teachers that write facelm's training data, and what keeps their output honest.

* `prompts`: versioned, replaceable prompt files (TOML) and the evidence block for grounding;
* `labels`: known labels in natural words for every label set; the leakage check;
* `checks`: refusal detection and the verdict a pair explanation states;
* `base` / `registry`: the Teacher interface, and teachers by name (`TeacherSpec`);
* `openai_teacher`: an async OpenAI-compatible chat client (retries, backoff, Retry-After, cost)
  over `http`, a lean keep-alive HTTP/1.1 client (httpx when a proxy is set);
* `endpoints`: several endpoints behind one teacher (caps, failover, cool-down);
* `evidence_teacher`: the offline teacher that writes from labels and measurements;
* `chat_server`: a local chat-completions server that injects faults, for tests and benchmarks.

Nothing heavy is imported here: the CLI imports this package on start-up.
"""
