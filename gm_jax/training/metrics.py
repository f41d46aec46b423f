"""Metric records: `workdir/metrics.jsonl` (one JSON object per logged step) and TensorBoard events
(scalars, and the sample images, audio and text of evaluation during training)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gm_jax.training.rundir import write_text_atomic


class MetricWriter:
    """Appends `{"step": s, **metrics}` lines to `workdir/metrics.jsonl` and scalars to TensorBoard
    (`workdir/tensorboard/`); `write_image`, `write_audio` and `write_text` add samples there.

    On resume from checkpoint step `resume_step`, records past that step (logged
    by the interrupted run after its last checkpoint) are dropped first, so the
    file describes one consistent history.
    """

    def __init__(self, workdir: str | Path, resume_step: int = 0):
        self.path = Path(workdir) / "metrics.jsonl"
        kept = [r for r in read_metrics(self.path) if r["step"] <= resume_step] if resume_step else []
        write_text_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))  # a kill here loses nothing
        self.last = kept[-1] if kept else {}
        self._file = self.path.open("a")
        from tensorboardX import SummaryWriter  # imports torch when installed (1.5 s): only where a run writes

        self._tb = SummaryWriter(str(Path(workdir) / "tensorboard"))

    def write(self, step: int, metrics: dict[str, float]) -> None:
        record = {"step": int(step), **{k: float(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        for k, v in record.items():
            if k != "step":
                self._tb.add_scalar(k, v, step)
        self.last = record

    def write_image(self, tag: str, image, step: int) -> None:
        """An image to TensorBoard under `tag` at `step`.

        Args:
          image: uint8 [H, W] (grayscale) or [H, W, C] with C = 1, 3 or 4 (RGBA), values 0..255.

        Raises:
          ValueError: another shape or dtype.
        """
        image = np.asarray(image)
        if image.dtype != np.uint8 or not (image.ndim == 2 or (image.ndim == 3 and image.shape[-1] in (1, 3, 4))):
            raise ValueError(f"image must be uint8 [H, W] or [H, W, C] with C in (1, 3, 4); got {image.dtype} "
                             f"{image.shape}")
        self._tb.add_image(tag, image, step, dataformats="HW" if image.ndim == 2 else "HWC")

    def write_audio(self, tag: str, waveform, sample_rate: int, step: int) -> None:
        """A mono waveform float [T] in [-1, 1] (clipped) at `sample_rate` Hz to TensorBoard under `tag` at `step`.

        Raises:
          ValueError: `waveform` is not 1-D.
        """
        waveform = np.asarray(waveform, np.float32)
        if waveform.ndim != 1:
            raise ValueError(f"waveform must be float [T] (mono); got shape {waveform.shape}")
        self._tb.add_audio(tag, np.clip(waveform, -1.0, 1.0), step, sample_rate=int(sample_rate))

    def write_text(self, tag: str, text: str, step: int) -> None:
        """Text to TensorBoard under `tag` at `step`, shown verbatim (a Markdown code block; TensorBoard
        stores it under `tag + "/text_summary"`)."""
        self._tb.add_text(tag, "```\n" + text.replace("```", "` ` `") + "\n```", step)

    def close(self) -> None:
        self._file.close()
        self._tb.close()


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics.jsonl file ([] when it does not exist; a partial last line is dropped).

    Raises:
      ValueError: a line other than the last is not JSON.
    """
    path = Path(path)
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # a run killed mid-append leaves a partial last line: drop it
                break
            raise ValueError(f"{path}, line {i + 1}, is not a JSON record: {line[:80]!r}") from None
    return records
