"""Data: the data directory, evaluation corpora (WikiText-2, PTB), the book-text calibration pool,
instruction data (Alpaca) and zero-shot task files. Modules are imported on use, not here."""
