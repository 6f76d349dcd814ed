"""How a node reports the fault that stops what it was doing.

An OSError (a full disk, a vanished file) is the machine's, not the code's: one line names it and the
operator knows what to fix. Anything else is a defect, logged with its traceback for whoever fixes it.
"""

import logging


def log_fault(logger: logging.Logger, message: str, error: BaseException) -> None:
    if isinstance(error, OSError):
        logger.error("%s: %s", message, error)
    else:
        logger.error(message, exc_info=error)
