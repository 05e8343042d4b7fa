"""A layout check for figures: after a draw, every legend and every axis label and title lies
inside the figure, and no legend or axis label overlaps another axes' labels, ticks or legend
(matplotlib's window extents and tight bounding boxes, in display pixels)."""

from matplotlib.figure import Figure
from matplotlib.transforms import Bbox

SLACK = 1.0  # pixels: extents are rounded to whole pixels by the renderer


def layout_defects(figure: Figure) -> list[str]:
    """What is wrong with the figure's layout, in words (empty: nothing)."""
    figure.canvas.draw()
    renderer = figure.canvas.get_renderer()
    frame = figure.bbox.padded(SLACK)
    defects = []

    def inside(box: Bbox) -> bool:
        return (box.x0 >= frame.x0 and box.y0 >= frame.y0 and box.x1 <= frame.x1
                and box.y1 <= frame.y1)  # fmt: skip

    def overlap(a: Bbox, b: Bbox) -> bool:
        shrunk = a.padded(-SLACK)
        return shrunk.width > 0 and shrunk.height > 0 and shrunk.overlaps(b.padded(-SLACK))

    texts = {}  # (axes index, what) -> box of a visible, non-empty label or title
    for i, ax in enumerate(figure.axes):
        if not ax.get_visible():
            continue
        for what, text in (("x label", ax.xaxis.label), ("y label", ax.yaxis.label),
                           ("title", ax.title)):  # fmt: skip
            if text.get_visible() and text.get_text():
                texts[(i, what)] = text.get_window_extent(renderer)
    legends = [(i, ax.get_legend()) for i, ax in enumerate(figure.axes) if ax.get_legend()]
    legends += [(None, legend) for legend in figure.legends]
    for i, legend in legends:
        box = legend.get_window_extent(renderer)
        where = "the figure's legend" if i is None else f"the legend of axes {i}"
        if not inside(box):
            defects.append(f"{where} lies (partly) outside the figure")
        for (j, what), label in texts.items():
            if overlap(box, label):
                defects.append(f"{where} overlaps the {what} of axes {j}")
    for (i, what), box in texts.items():
        if not inside(box):
            defects.append(f"the {what} of axes {i} lies (partly) outside the figure")
        for j, other in enumerate(figure.axes):
            if j != i and other.get_visible() and overlap(box, other.get_tightbbox(renderer)):
                defects.append(f"the {what} of axes {i} overlaps axes {j}")
    return defects
