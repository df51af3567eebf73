"""On the line: acquire images, decide each part fail-safe, log it, then act on it.

Torch-free: the line sees a model only through the ``Inspector`` protocol (``BundleInspector``
loads a bundle lazily; the ONNX runtime will provide another).

>>> from defectscope.line import LinePipeline, parse_source, Publish        # doctest: +SKIP
>>> LinePipeline(parse_source("glob:parts/*.png"), inspector, store,
...              actions=[Publish(print)]).run()                           # doctest: +SKIP
"""

from defectscope.line.actions import (
    Action,
    Alert,
    Archive,
    ArchivedPaths,
    PartEvent,
    Publish,
    RejectSignal,
)
from defectscope.line.decision import Decision, FailSafePolicy, decide, evaluate
from defectscope.line.genicam import GenICamSource
from defectscope.line.pipeline import BundleInspector, Inspector, LineCounters, LinePipeline
from defectscope.line.sources import (
    CameraSource,
    FileListSource,
    FolderWatchSource,
    Frame,
    Source,
    SourceError,
    VideoFileSource,
    parse_source,
)

__all__ = [
    "Action",
    "Alert",
    "Archive",
    "ArchivedPaths",
    "BundleInspector",
    "CameraSource",
    "Decision",
    "FailSafePolicy",
    "FileListSource",
    "FolderWatchSource",
    "Frame",
    "GenICamSource",
    "Inspector",
    "LineCounters",
    "LinePipeline",
    "PartEvent",
    "Publish",
    "RejectSignal",
    "Source",
    "SourceError",
    "VideoFileSource",
    "decide",
    "evaluate",
    "parse_source",
]
