"""Data generators: the parity mixture (``parity``) and the text datasets (``math_text``)."""
