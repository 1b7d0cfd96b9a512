import pytest

import fervideo
from tests.helpers import imported_after


def test_import_fervideo_is_light_and_touches_no_environment():
    assert imported_after("import fervideo") == {"heavy": [], "env_changed": []}


def test_the_pipeline_module_loads_tensorflow_only_when_a_model_is_loaded():
    found = imported_after("import fervideo.pipeline")
    assert "tensorflow" not in found["heavy"] and "keras" not in found["heavy"]
    assert set(found["env_changed"]) <= {"LD_LIBRARY_PATH"}  # set by OpenCV's own loader


@pytest.mark.parametrize("name", sorted(set(fervideo.__all__) - {"__version__"}))
def test_every_public_name_resolves(name):
    assert getattr(fervideo, name) is not None


def test_public_names_are_listed_and_unknown_ones_fail():
    assert {"analyze", "analyze_many", "AnalyzeConfig", "EMOTIONS"} <= set(dir(fervideo))
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        fervideo.nothing  # noqa: B018
    assert fervideo.__version__.count(".") == 2


def test_a_converted_model_classifies_without_tensorflow(tiny_model, classifier):
    """Once a model is converted (the session's `classifier` did it), analysing loads neither
    TensorFlow nor Keras: their start-up was most of a short video's cost."""
    import os

    statement = (
        "import numpy as np; from fervideo.classify import ExpressionClassifier; "
        f"c = ExpressionClassifier({str(tiny_model)!r}, runtime='onnx'); "
        "assert c.predict(np.zeros((3, 48, 48), np.uint8)).shape == (3, 7)"
    )
    found = imported_after(statement, env=dict(os.environ))
    assert "tensorflow" not in found["heavy"] and "keras" not in found["heavy"]
