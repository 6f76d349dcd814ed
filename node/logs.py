"""The node's logs: CometBFT's levels (debug, info, error, none) and formats (plain, or json: one object a
line, with the structured fields a record carries under LOG_FIELDS, such as a block's height and gas).
Libraries' own chatter (EZKL, ONNX, gRPC) shows only at debug."""

import json
import logging

from node.app_config import LOG_FORMATS, LOG_LEVELS

LOG_FIELDS = "fields"  # the `extra` key of a record's structured fields
LEVELS = dict(zip(LOG_LEVELS, (logging.DEBUG, logging.INFO, logging.ERROR, logging.CRITICAL + 1)))
CHATTY_LOGGERS = ("ezkl", "onnx", "onnxruntime", "grpc", "aiohttp.access")
PLAIN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class LogConfigError(Exception):
    pass


class JsonLogFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {"time": self.formatTime(record), "level": record.levelname.lower(), "module": record.name,
                 "msg": record.getMessage(), **getattr(record, LOG_FIELDS, {})}
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def configure(level: str, log_format: str) -> None:
    if level not in LEVELS:
        raise LogConfigError(f"invalid log level {level!r}: one of {', '.join(LEVELS)}")
    if log_format not in LOG_FORMATS:
        raise LogConfigError(f"invalid log format {log_format!r}: one of {', '.join(LOG_FORMATS)}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter() if log_format == "json" else logging.Formatter(PLAIN_FORMAT))
    logging.basicConfig(level=LEVELS[level], handlers=[handler], force=True)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.DEBUG if level == "debug" else logging.WARNING)
