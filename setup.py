from setuptools import find_packages, setup

setup(
    name="tl",
    version="0.1.0",
    description="A minimal PyTorch reference implementation of TL-Training (Ye et al., EMNLP 2025)",
    packages=find_packages(include=["tl", "tl.*", "tasks", "tasks.*"]),
    py_modules=["train_sft", "train_ppo", "evaluate"],
    python_requires=">=3.10",
    # torch is pinned by the install command (`pip install torch==2.13.0`, a CPU wheel on
    # this machine); a bare requirement here is satisfied by it and pulls nothing else.
    install_requires=["torch>=2.6", "sentencepiece", "tokenizers", "safetensors", "numpy", "tqdm"],
    # transformers is a test-only reference (logit parity, checkpoint round trips); tl/ never imports it.
    extras_require={
        "gguf": ["gguf"],  # python -m tl.gguf: import llama.cpp GGUF files
        "test": ["pytest", "transformers", "gguf", "ruff"],
        "plot": ["matplotlib"],  # experiments' charts
    },
)
