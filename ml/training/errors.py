"""Why a training run cannot go ahead, in words the person who started it can act on."""


class InsufficientData(Exception):
    """The data cannot support the requested training run (too little history, one class, ...).

    The message says what is missing and what to change (an earlier --as-of, a shorter
    --horizon, fewer --cutoffs).
    """
