"""photoindex: persistent CLIP photo search (SQLite is the truth, FAISS a rebuildable cache)."""

__version__ = "0.1.0"
