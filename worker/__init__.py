"""The OCR worker: pops jobs from Redis, runs Tesseract, stores the result, records the outcome."""
