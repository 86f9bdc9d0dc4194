import json

from atlantis.data.paths import image_path
from atlantis.data.records import ImageRecord
from atlantis.store.run import Run


def test_real_images_resolve_under_dataset_root_others_under_run(tmp_path):
    run = Run(tmp_path / "run")
    (run.root / "ingest").mkdir(parents=True)
    (run.root / "ingest" / "dataset.json").write_text(json.dumps({"root": str(tmp_path / "data")}))
    real = ImageRecord(id="a", path="c/1.png", label="c")
    synth = ImageRecord(id="b", path="generate/x/images/b.png", label="c", source="synthetic")
    assert image_path(run, real) == tmp_path / "data" / "c" / "1.png"
    assert image_path(run, synth) == (tmp_path / "run").resolve() / "generate/x/images/b.png"
