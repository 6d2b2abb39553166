"""The Label Studio labeling configuration, derived from the class names.

One image, one rectangle tool with a label per class, and a task-level review choice.
In ``reviewer`` mode a reviewer opens an annotation and sets *accept* or *reject*
(``review`` is the name the review step reads); annotators leave it empty.
"""

from __future__ import annotations

import re
from xml.sax.saxutils import quoteattr

IMAGE = "image"  # the task data key and the Image tag's name
BOXES = "label"  # the RectangleLabels tag's name
REVIEW = "review"  # the Choices tag's name
ACCEPT = "accept"
REJECT = "reject"

# One colour per class, cycled: Label Studio's default palette is hard to tell apart.
PALETTE = ("#e6194b", "#3cb44b", "#4363d8", "#f58231", "#911eb4", "#42d4f4", "#f032e6", "#bfef45")


def labeling_config(class_names: list[str]) -> str:
    """The XML labeling configuration for ``class_names`` (at least one, no duplicates)."""
    if not class_names:
        raise ValueError("a labeling configuration needs at least one class name")
    if len(set(class_names)) != len(class_names):
        raise ValueError(f"class names must be unique, got {class_names}")
    labels = "\n".join(
        f"    <Label value={quoteattr(name)} background={quoteattr(PALETTE[i % len(PALETTE)])}/>"
        for i, name in enumerate(class_names)
    )
    return f"""<View>
  <Image name="{IMAGE}" value="${IMAGE}" zoom="true" zoomControl="true"/>
  <RectangleLabels name="{BOXES}" toName="{IMAGE}" strokeWidth="2">
{labels}
  </RectangleLabels>
  <Header value="Review (reviewers only): accept the boxes as they are now, or reject them"/>
  <Choices name="{REVIEW}" toName="{IMAGE}" choice="single" showInline="true">
    <Choice value="{ACCEPT}"/>
    <Choice value="{REJECT}"/>
  </Choices>
</View>"""


def config_class_names(config: str) -> list[str]:
    """The class names of a labeling configuration made by ``labeling_config``."""
    block = re.search(r"<RectangleLabels[^>]*>(.*?)</RectangleLabels>", config, re.S)
    if block is None:
        return []
    return re.findall(r'<Label value="([^"]*)"', block.group(1))
