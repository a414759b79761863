"""Per-image intermediates shared by several families, computed once per case and memoised.

Families call :func:`view` and read what they need; each property is computed on first use and
kept in ``case.memo`` so that, e.g., the signed distance transform serves the border, colour,
wood and texture families alike.
"""

from __future__ import annotations

from functools import cached_property

import cv2
import numpy as np

from vitfeat.featurize.registry import CaseArrays

#: How far from the lesion (px) distances are computed; beyond, they are +inf.
DISTANCE_MARGIN = 72
#: OpenCV's 5x5 chamfer approximation of the Euclidean distance: at most 1.6 % too long (at 22.5
#: degrees off the axes), exact along axes and diagonals, and 3x cheaper than the exact transform.
#: Features bin distances in 0.5-px steps within ~30 px of the edge, so the error stays under one bin.
DISTANCE_KERNEL = cv2.DIST_MASK_5
#: The farthest (px) the built-in families read distances with their defaults (colour: 2 x 24 px);
#: the first :meth:`ImageView.distance_near` computes this window (or the ring's, if wider).
DISTANCE_PREFETCH_PX = 48.0


class ImageView:
    """Lazily computed grey, CIELAB, signed distance and ring of one image and its lesion mask.

    Parameters
    ----------
    rgb : numpy.ndarray
        (H, W, 3) uint8 photo.
    mask : numpy.ndarray or None
        (H, W) lesion mask.
    ring_frac : float, default 0.35
        Width of the perilesional ring, as a fraction of the lesion's equivalent radius.
    ring_min_px : int, default 5
        Its smallest width in pixels.
    """

    def __init__(self, rgb: np.ndarray, mask: np.ndarray | None, ring_frac: float = 0.35, ring_min_px: int = 5):
        self.rgb = rgb
        self.mask = None if mask is None else np.asarray(mask, dtype=bool)
        self.ring_frac = ring_frac
        self.ring_min_px = ring_min_px

    @property
    def has_lesion(self) -> bool:
        return self.mask is not None and self.area > 0

    @cached_property
    def grey_u8(self) -> np.ndarray:
        """ITU-R 601 luma, uint8 (the grey image pyradiomics is given in the benchmark)."""
        return cv2.cvtColor(self.rgb, cv2.COLOR_RGB2GRAY)

    @cached_property
    def area(self) -> int:
        return int(np.count_nonzero(self.mask)) if self.mask is not None else 0

    @cached_property
    def components_box(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """``cv2.connectedComponentsWithStats`` of the mask (8-connectivity) with the labels of its
        bounding box only: n, labels over :attr:`mask_box` (origin :attr:`labels_origin`), stats, centroids.

        Every lesion label lies within the box, so the labels beyond it (all 0) are not stored: the
        families read the box, which spares allocating and filling an image-sized int32 array.
        ``stats`` and ``centroids`` are in image coordinates; row 0 (background) of ``stats``
        describes the box's background, not the image's. A mask of one piece (most lesions) skips
        the labelling, whose statistics pass is the costly part (see :func:`_single_component`);
        its labels are then the 0/1 box itself (uint8: the same values as the labelling's int32).
        """
        if self.area == 0:
            return cv2.connectedComponentsWithStats(self.mask.astype(np.uint8), connectivity=8)
        y0, y1, x0, x1 = self.mask_box
        crop = np.ascontiguousarray(self.mask[y0:y1, x0:x1]).view(np.uint8)
        single = _single_component(crop)
        if single is not None:
            n, crop_labels, stats, centroids = single
        else:
            # 16-bit labels are a quarter faster; a box has at most size/4 8-connected pieces.
            ltype = cv2.CV_16U if crop.size < 4 * 65535 else cv2.CV_32S
            n, crop_labels, stats, centroids = cv2.connectedComponentsWithStats(crop, connectivity=8, ltype=ltype)
        stats = stats.copy()
        stats[:, cv2.CC_STAT_LEFT] += x0
        stats[:, cv2.CC_STAT_TOP] += y0
        return n, crop_labels, stats, centroids + np.array([x0, y0], np.float64)

    @property
    def labels_origin(self) -> tuple[int, int]:
        """Image (row, column) of the first label of :attr:`components_box`."""
        return (self.mask_box[0], self.mask_box[2]) if self.area else (0, 0)

    @cached_property
    def components(self) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
        """:attr:`components_box` with the labels placed in an image-sized int32 array, as
        ``cv2.connectedComponentsWithStats`` of the whole mask gives them."""
        n, box_labels, stats, centroids = self.components_box
        if self.area == 0:
            return n, box_labels, stats, centroids
        y0, y1, x0, x1 = self.mask_box
        labels = np.zeros(self.mask.shape, np.int32)
        labels[y0:y1, x0:x1] = box_labels
        return n, labels, stats, centroids

    @cached_property
    def main_label(self) -> int:
        """Label of the largest component (the main lesion); 0 when the mask is empty."""
        n, _, stats, _ = self.components_box
        return 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])) if n > 1 else 0

    @cached_property
    def equivalent_radius(self) -> float:
        return float(np.sqrt(self.area / np.pi))

    @cached_property
    def ring_width(self) -> float:
        return max(float(self.ring_min_px), self.ring_frac * self.equivalent_radius)

    # --- Region of interest: the lesion's bounding box grown by a margin. Every region feature
    # (edge profiles, ring, perilesional colour) lies within it, and working on it instead of the
    # whole photo makes distance transforms, colour conversion and filtering 3-5x cheaper.

    @cached_property
    def mask_box(self) -> tuple[int, int, int, int]:
        """The mask's bounding box in image pixels, ``(y0, y1, x0, x1)`` with exclusive ends."""
        return bounding_box(self.mask)

    @cached_property
    def roi(self) -> tuple[slice, slice]:
        margin = max(DISTANCE_MARGIN, int(np.ceil(self.ring_width)) + 4)
        y0, y1, x0, x1 = grown(self.mask_box, margin, self.mask.shape)
        return slice(y0, y1), slice(x0, x1)

    @property
    def roi_origin(self) -> tuple[int, int]:
        return self.roi[0].start, self.roi[1].start

    def near(self, px: float) -> tuple[slice, slice]:
        """Slices, in ROI coordinates, of a window holding every ROI pixel with ``distance_roi <= px``.

        Families that look at a band around the edge (border profile, colour zones, the Wood's
        border contrast) work on this window instead of the whole ROI: the same pixels in the same
        (row-major) order, so the same results, from a fraction of the array operations. Sound
        because neither the chamfer nor the exact Euclidean distance is ever shorter than the
        chessboard distance: a pixel ``m`` rows or columns beyond the mask's bounding box has
        ``distance_roi >= m - 0.5``.

        Parameters
        ----------
        px : float
            Distance from the lesion in pixels.

        Returns
        -------
        tuple of slice
        """
        (ry, rx), (y0, y1, x0, x1) = self.roi_origin, self.mask_box
        y0, y1, x0, x1 = grown((y0 - ry, y1 - ry, x0 - rx, x1 - rx), int(np.ceil(max(px, 0.0))) + 1,
                               self.mask_roi.shape)
        return slice(y0, y1), slice(x0, x1)

    @cached_property
    def mask_roi(self) -> np.ndarray:
        return self.mask[self.roi]

    @cached_property
    def grey_roi(self) -> np.ndarray:
        return self.grey_u8[self.roi].astype(np.float32)

    @cached_property
    def lab8_roi(self) -> np.ndarray:
        """OpenCV's 8-bit CIELAB (D65): L* x 255/100, a* + 128, b* + 128, uint8.

        Table-driven, several times faster than the float conversion; its quantisation (0.4 L*
        units) is far below a camera's noise. Statistics convert exactly with :func:`lab8_to_lab`.
        """
        return cv2.cvtColor(np.ascontiguousarray(self.rgb[self.roi]), cv2.COLOR_RGB2Lab)

    def lab8_window(self, window: tuple[slice, slice]) -> np.ndarray:
        """:attr:`lab8_roi` over a window of the ROI (e.g. :meth:`near`), converting only that window.

        The conversion is per pixel, so the values equal the ROI's; a ROI already converted is sliced.

        Parameters
        ----------
        window : tuple of slice
            Rows and columns in ROI coordinates.

        Returns
        -------
        numpy.ndarray
        """
        if "lab8_roi" in self.__dict__:
            return self.lab8_roi[window]
        return cv2.cvtColor(np.ascontiguousarray(self.rgb[self.roi][window]), cv2.COLOR_RGB2Lab)

    @property
    def lab_roi(self) -> np.ndarray:
        """CIELAB as float32 (L* in [0, 100]); converts :attr:`lab8_roi` on each access."""
        return lab8_to_lab(self.lab8_roi.astype(np.float32))

    def labels_window(self, window: tuple[slice, slice]) -> tuple[tuple[slice, slice], np.ndarray]:
        """The component labels within ``window`` (ROI coordinates) where :attr:`components_box`
        holds them: ``(box, labels)`` with ``box`` as slices of the window; the labels of the
        whole image (:attr:`components`) are 0 in the window beyond ``box``.

        Parameters
        ----------
        window : tuple of slice
            Rows and columns in ROI coordinates.

        Returns
        -------
        tuple
            ``(box, labels)``.
        """
        (ry, rx), (ly, lx) = self.roi_origin, self.labels_origin
        labels = self.components_box[1]
        parts = []
        for w, start, size in zip(window, (ly - ry, lx - rx), labels.shape):
            lo, hi = max(start, w.start), min(start + size, w.stop)
            parts.append((slice(lo - w.start, hi - w.start), slice(lo - start, hi - start)))
        return (parts[0][0], parts[1][0]), labels[parts[0][1], parts[1][1]]

    @cached_property
    def distance_roi(self) -> np.ndarray:
        """Signed distance to the lesion boundary in px: negative inside, positive outside (float32).

        Over the whole ROI; families read :meth:`distance_near`, which computes only the window
        they look at (the same values there, to 1 float32 ulp: see there).
        """
        h, w = self.mask_roi.shape
        return self._signed_distance((slice(0, h), slice(0, w)))

    def _signed_distance(self, window: tuple[slice, slice]) -> np.ndarray:
        """The signed distance over ``window`` (ROI coordinates; a window holding the mask's box)."""
        m = self.mask_roi[window].view(np.uint8)
        signed = cv2.distanceTransform(1 - m, cv2.DIST_L2, DISTANCE_KERNEL)  # outside the lesion
        # Inside distances need only the mask's box grown by one background pixel (or up to the ROI's
        # edge): every path to a background pixel beyond crosses that ring first, and both
        # distances grow with each coordinate offset, so the nearest background pixel is in the box.
        box = within(self.near(0.0), window)
        inside = cv2.distanceTransform(np.ascontiguousarray(m[box]), cv2.DIST_L2, DISTANCE_KERNEL)
        # Each transform is 0 where the other is not, so the signed distance is their difference;
        # the half-pixel shift puts the zero level on the pixel edge between lesion and skin.
        signed[box] -= inside
        signed -= 0.5
        signed += m
        return signed

    def distance_near(self, px: float) -> np.ndarray:
        """``distance_roi[near(px)]``, computed over a window of the ROI instead of the whole ROI.

        Same values: the mask lies within the window, and the chamfer distance from a pixel to the
        nearest lesion pixel follows a monotone path (each chamfer step moves towards the target),
        which stays inside the rectangle spanned by the two pixels, hence inside any window holding
        both. The first call computes the window that every built-in family reads with its defaults
        (:data:`DISTANCE_PREFETCH_PX`, the ring's outer edge), so one transform serves them all; a
        farther request computes its own, larger window. Bit for bit with OpenCV's plain chamfer
        code; its IPP kernel (on by default) may round a sum 1 float32 ulp differently in another
        window, never across a threshold the families compare with (see tests/test_featurize_speedups.py).

        Parameters
        ----------
        px : float
            Distance from the lesion in pixels.

        Returns
        -------
        numpy.ndarray
        """
        window = self.near(px)
        held = self.__dict__.get("_distance_window")
        if held is None or not _contains(held[0], window):
            reach = max(px, DISTANCE_PREFETCH_PX, 2.0 + self.ring_width)
            held = self._distance_window = (self.near(reach), self._signed_distance(self.near(reach)))
        return held[1][within(window, held[0])]

    @cached_property
    def ring_roi(self) -> np.ndarray:
        """Perilesional skin: outside the lesion, within ``ring_width`` px of its boundary.

        A gap of 2 px keeps the blurred edge itself out of the "normal skin" reference. Filled on
        the window :meth:`near` its outer edge only: every pixel beyond is farther (see there).
        """
        outer = 2.0 + self.ring_width
        ring = np.zeros(self.mask_roi.shape, bool)
        d = self.distance_near(outer)
        ring[self.near(outer)] = (d > 2.0) & (d <= outer)
        return ring

    @cached_property
    def boundary_roi(self) -> np.ndarray:
        """Lesion pixels with a background pixel among their 8 neighbours."""
        # On the mask's box grown by 2 px (clipped to the ROI, whose edges count as lesion as before):
        # the 3x3 neighbourhoods of its lesion pixels lie within it.
        window = self.near(1.0)
        m = self.mask_roi[window]
        boundary = np.zeros(self.mask_roi.shape, bool)
        boundary[window] = m & (cv2.erode(m.view(np.uint8), np.ones((3, 3), np.uint8), borderValue=1) == 0)
        return boundary


def within(window: tuple[slice, slice], outer: tuple[slice, slice]) -> tuple[slice, slice]:
    """``window`` (ROI coordinates) as slices of the ``outer`` window that contains it.

    Parameters
    ----------
    window, outer : tuple of slice
        Rows and columns in ROI coordinates; ``outer`` contains ``window``.

    Returns
    -------
    tuple of slice
    """
    return tuple(slice(w.start - o.start, w.stop - o.start) for w, o in zip(window, outer))


def bounding_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """A bool mask's bounding box ``(y0, y1, x0, x1)``, exclusive ends (one OpenCV pass); all 0 when empty.

    Parameters
    ----------
    mask : numpy.ndarray
        (H, W) bool.

    Returns
    -------
    tuple of int
    """
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray(mask, dtype=bool).view(np.uint8))
    return y, y + h, x, x + w


def grown(box: tuple[int, int, int, int], margin: int, shape) -> tuple[int, int, int, int]:
    """``box`` ``(y0, y1, x0, x1)`` grown by ``margin`` px on every side, clipped to an image of ``shape``.

    Parameters
    ----------
    box : tuple of int
        ``(y0, y1, x0, x1)``.
    margin : int
        Pixels added on every side.
    shape : tuple
        The image's shape.

    Returns
    -------
    tuple of int
    """
    y0, y1, x0, x1 = box
    h, w = shape[:2]
    return max(y0 - margin, 0), min(y1 + margin, h), max(x0 - margin, 0), min(x1 + margin, w)


def _contains(outer: tuple[slice, slice], window: tuple[slice, slice]) -> bool:
    return all(o.start <= w.start and w.stop <= o.stop for o, w in zip(outer, window))


def _single_component(crop: np.ndarray):
    """``connectedComponentsWithStats(crop, connectivity=8)`` of a 0/1 uint8 mask box holding one
    8-connected piece, or None when it holds more.

    Outer contours (``findContours``, 8-connected like the labelling) count the pieces, islands in
    holes included (``RETR_CCOMP`` puts them at the top level); with one piece the labels are the
    mask, its box is the whole crop, and its area and centroid are the moments' (exact integer
    sums, as the labelling's). Several times faster than the labelling with statistics.
    """
    _, hierarchy = cv2.findContours(crop, cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    if hierarchy is None or np.count_nonzero(hierarchy[0][:, 3] == -1) != 1:
        return None
    h, w = crop.shape
    m = cv2.moments(crop, binaryImage=True)
    area = int(m["m00"])
    bg = [*cv2.boundingRect(np.uint8(1) - crop), h * w - area]  # the background's box; 0s when there is none
    stats = np.array([bg, [0, 0, w, h, area]], np.int32)
    centroids = np.array([[np.nan, np.nan], [m["m10"] / m["m00"], m["m01"] / m["m00"]]])
    if h * w > area:  # the background's: the whole box's coordinate sums minus the lesion's
        centroids[0] = ((h * w * (w - 1) / 2 - m["m10"]) / (h * w - area),
                        (w * h * (h - 1) / 2 - m["m01"]) / (h * w - area))
    return 2, crop, stats, centroids


def satellite_sized(stats: np.ndarray, min_area_px: int = 8, max_area_fraction: float = 0.25) -> tuple[int, list[int]]:
    """``(main, sized)`` from ``cv2.connectedComponentsWithStats``' stats (row 0 the background, at
    least one lesion component): the label of the largest component and, in label order, those of the
    others of satellite size (``min_area_px`` .. ``max_area_fraction`` of the main one's area).

    Parameters
    ----------
    stats : numpy.ndarray
        The components' stats.
    min_area_px : int, default 8
        Smallest satellite.
    max_area_fraction : float, default 0.25
        Largest satellite, relative to the main component.

    Returns
    -------
    tuple
        ``(main label, satellite labels)``.
    """
    areas = stats[:, cv2.CC_STAT_AREA]
    main = 1 + int(np.argmax(areas[1:]))
    limit = max_area_fraction * float(areas[main])
    return main, [k for k in range(1, len(stats)) if k != main and min_area_px <= areas[k] <= limit]


def lab8_to_lab(values: np.ndarray) -> np.ndarray:
    """OpenCV 8-bit CIELAB values (or their means) to L* [0, 100], a*, b* (last axis: L, a, b).

    Parameters
    ----------
    values : numpy.ndarray
        OpenCV's 8-bit Lab values.

    Returns
    -------
    numpy.ndarray
    """
    values = np.asarray(values, dtype=np.float64 if np.ndim(values) <= 1 else np.float32).copy()
    values[..., 0] *= 100.0 / 255.0
    values[..., 1:] -= 128.0
    return values


def view(case: CaseArrays, modality: str) -> ImageView | None:
    """The memoised :class:`ImageView` of a case's image, or None when the case lacks it.

    Parameters
    ----------
    case : CaseArrays
        The case.
    modality : str
        ``clinical`` or ``wood``.

    Returns
    -------
    ImageView or None
    """
    key = ("view", modality)
    if key not in case.memo:
        rgb = case.image(modality)
        case.memo[key] = None if rgb is None else ImageView(rgb, case.mask(modality))
    return case.memo[key]


def coordinates(where: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``np.nonzero(where)`` of a 2-D array (rows, cols; same order), from flat indices: ~5x faster.

    Parameters
    ----------
    where : numpy.ndarray
        2-D bool array.

    Returns
    -------
    tuple of numpy.ndarray
    """
    flat = np.flatnonzero(where)
    rows = flat // where.shape[1]
    return rows, flat - rows * where.shape[1]


def nan_dict(names) -> dict:
    """``{name: NaN}`` for each name (a family's answer when it has nothing to measure).

    Parameters
    ----------
    names : iterable of str
        Feature names.

    Returns
    -------
    dict
    """
    return {n: float("nan") for n in names}
