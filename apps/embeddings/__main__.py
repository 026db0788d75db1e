"""python -m apps.embeddings --config=configs/embeddings.py --workdir=runs/embeddings"""

from apps.core.main import run
from apps.embeddings.task import EmbeddingsTask

if __name__ == "__main__":
    run(EmbeddingsTask)
