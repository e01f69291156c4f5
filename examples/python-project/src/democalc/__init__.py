"""democalc: add and multiply numbers given as text (a package for Rivet's examples)."""

__version__ = "0.1.0"


def total(values):
    """The sum of ``values`` (strings or numbers), as an int when it is whole."""
    result = sum((float(v) for v in values), 0.0)
    return int(result) if result.is_integer() else result


def product(values):
    result = 1.0
    for v in values:
        result *= float(v)
    return int(result) if result.is_integer() else result
