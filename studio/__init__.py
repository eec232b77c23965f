"""The studio: make, correct and export masks of your own videos in the browser (python -m studio)."""
