"""Readers for Acclaim motion capture (ASF skeletons, AMC motions) and the CMU loader.

The CMU Graphics Lab Motion Capture Database stores each recording as an
Acclaim AMC file (one line per joint per frame, angles in degrees) and each
subject's skeleton as an Acclaim ASF file. The paper's Sec. 4.2 models 50 of
the 62 channels of a CMU frame (the joint angles less the root's global
position and heading and the six channels the skeleton never moves).

Everything here is plain numpy (no torch, no matplotlib).
"""

import gzip
import math
import os
import zlib
from pathlib import Path

import numpy as np
from sklearn.utils import Bunch

__all__ = [
    "Skeleton",
    "features_to_channels",
    "load_cmu_mocap",
    "read_amc",
    "read_asf",
]

#: Frames per second of the CMU recordings.
CMU_FPS = 120
#: Frames per label window of the ``.labels.txt`` annotation (0.1 s at 120 fps).
FRAMES_PER_WINDOW = 12

#: The CMU joint order of an AMC frame and each joint's channels (the ``dof``
#: lines of the database's ASF files, shared by all its subjects).
CMU_DOFS = {
    "root": ("tx", "ty", "tz", "rx", "ry", "rz"),
    "lowerback": ("rx", "ry", "rz"),
    "upperback": ("rx", "ry", "rz"),
    "thorax": ("rx", "ry", "rz"),
    "lowerneck": ("rx", "ry", "rz"),
    "upperneck": ("rx", "ry", "rz"),
    "head": ("rx", "ry", "rz"),
    "rclavicle": ("ry", "rz"),
    "rhumerus": ("rx", "ry", "rz"),
    "rradius": ("rx",),
    "rwrist": ("ry",),
    "rhand": ("rx", "rz"),
    "rfingers": ("rx",),
    "rthumb": ("rx", "rz"),
    "lclavicle": ("ry", "rz"),
    "lhumerus": ("rx", "ry", "rz"),
    "lradius": ("rx",),
    "lwrist": ("ry",),
    "lhand": ("rx", "rz"),
    "lfingers": ("rx",),
    "lthumb": ("rx", "rz"),
    "rfemur": ("rx", "ry", "rz"),
    "rtibia": ("rx",),
    "rfoot": ("rx", "rz"),
    "rtoes": ("rx",),
    "lfemur": ("rx", "ry", "rz"),
    "ltibia": ("rx",),
    "lfoot": ("rx", "rz"),
    "ltoes": ("rx",),
}

#: Channels left out of the paper's 50 features: the root's global position
#: and orientation, and the six channels that stay constant in every CMU
#: recording (both clavicles' two, both fingers' one; checked on the four
#: recordings in ``tests/test_mocap.py``).
CMU_ROOT_CHANNELS = tuple(f"root.{d}" for d in CMU_DOFS["root"])
CMU_CONSTANT_CHANNELS = (
    "rclavicle.ry",
    "rclavicle.rz",
    "rfingers.rx",
    "lclavicle.ry",
    "lclavicle.rz",
    "lfingers.rx",
)

#: Label numbers of the ``.labels.txt`` files (Fox et al., 2014), 1-based.
CMU_LABEL_NAMES = (
    "JumpJack",
    "Jog",
    "Squat",
    "KneeRaise",
    "ArmCircle",
    "Twist",
    "SideReach",
    "Box",
    "UpDown",
    "ToeTouchOneHand",
    "SideBend",
    "ToeTouchTwoHands",
)


def _cmu_channel_names():
    return [f"{joint}.{dof}" for joint, dofs in CMU_DOFS.items() for dof in dofs]


def _read_text(path):
    """The whole text of ``path``, gunzipped when it starts with gzip's magic bytes."""
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except OSError as exc:
        raise OSError(f"{path}: cannot read the file ({exc})") from exc
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (EOFError, OSError, zlib.error) as exc:
            raise ValueError(f"{path}: corrupt or truncated gzip stream ({exc})") from exc
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# ---------------------------------------------------------------------- AMC
def read_amc(path, *, skeleton=None):
    """Read an Acclaim AMC motion file.

    Parameters
    ----------
    path : str or path-like
        The ``.amc`` file, optionally gzip-compressed (detected from its
        content, whatever its name).
    skeleton : Skeleton, default=None
        Names the channels of each joint (its ``dof`` lines). ``None`` uses
        the CMU database's layout, shared by all its subjects; a joint the
        layout does not know gets channels ``joint.0``, ``joint.1``, ...

    Returns
    -------
    frames : ndarray of shape (n_frames, n_channels), dtype float64
        The values in file order, one row per frame (angles in the file's
        unit, degrees for CMU files).
    channel_names : list of str
        ``"joint.dof"`` per column, e.g. ``"lfemur.rx"``.

    Raises
    ------
    ValueError
        For a corrupt or truncated gzip stream, or a frame that does not
        match the first frame's layout (a joint missing, renamed or out of
        order, a wrong number of values, text where a number belongs, frame
        numbers out of sequence, a last frame cut short). The message names
        the file and the line; nothing is returned.

    Notes
    -----
    Every frame must list the same joints in the same order as the first
    one (as the CMU files do); the whole file is split at once and
    converted with numpy, so a 4,600-frame recording reads in a fraction of
    a second.

    Examples
    --------
    >>> from sklearn_vhp.datasets import read_amc
    >>> frames, names = read_amc("13_29.amc.gz")  # doctest: +SKIP
    >>> frames.shape, names[6]  # doctest: +SKIP
    ((4592, 62), 'lowerback.rx')
    """
    path = Path(path)
    lines = _read_text(path).splitlines()
    # Header: comments and keywords (":FULLY-SPECIFIED", ":DEGREES").
    start = 0
    while start < len(lines) and (
        not lines[start].strip() or lines[start].lstrip()[:1] in ("#", ":")
    ):
        start += 1
    body = lines[start:]
    # Blank lines carry nothing; keep the file's line numbers for messages.
    lineno = np.array([start + 1 + i for i, line in enumerate(body) if line.strip()])
    body = [line for line in body if line.strip()]
    if not body:
        raise ValueError(f"{path}: no frames after the header (line {start + 1})")

    def fail(i, what):
        raise ValueError(f"{path}, line {lineno[i]}: {what}: {body[i].strip()[:80]!r}")

    if len(body[0].split()) != 1 or not body[0].strip().isdigit():
        fail(0, "expected a frame number")
    # The first frame's joints fix the layout.
    joints = []
    for line in body[1:]:
        toks = line.split()
        if len(toks) == 1 and toks[0].isdigit():
            break
        joints.append((toks[0], len(toks) - 1))
    if not joints:
        fail(0, "frame without joints")
    dofs = CMU_DOFS if skeleton is None else skeleton.dofs
    channel_names = []
    for name, count in joints:
        names = dofs.get(name)
        if names is None or len(names) != count:
            names = [str(k) for k in range(count)]
        channel_names.extend(f"{name}.{d}" for d in names)
    per_frame = len(joints) + 1
    n_frames = -(-len(body) // per_frame)
    frames = _amc_fast(body, joints, n_frames)
    if frames is not None:
        return frames, channel_names

    # Something is off: find the first bad line, checking line by line.
    tokens = [line.split() for line in body]

    # Check the layout of every line at once: first tokens and token counts.
    first = np.array([toks[0] if toks else "" for toks in tokens], dtype=object)
    counts = np.fromiter(map(len, tokens), dtype=np.int64, count=len(tokens))
    expected_first = np.tile(np.array(["#"] + [j for j, _ in joints], dtype=object), n_frames)
    expected_counts = np.tile(np.array([1] + [c + 1 for _, c in joints]), n_frames)
    expected_first, expected_counts = expected_first[: len(body)], expected_counts[: len(body)]
    is_number_line = np.arange(len(body)) % per_frame == 0
    bad_name = (first != expected_first) & ~is_number_line
    bad_count = counts != expected_counts
    bad = np.flatnonzero(bad_name | bad_count)
    if bad.size:
        i = int(bad[0])
        frame = i // per_frame + 1
        if is_number_line[i]:
            fail(i, f"expected the number of frame {frame}, a single integer")
        if bad_name[i]:
            fail(i, f"expected joint {expected_first[i]!r} in frame {frame}")
        fail(
            i,
            f"joint {first[i]!r} in frame {frame} has {counts[i] - 1} values, "
            f"expected {expected_counts[i] - 1}",
        )
    if len(body) % per_frame:
        i = len(body) - 1
        fail(i, f"the file ends inside frame {n_frames}: joints missing after this line")
    numbers = first[is_number_line]
    try:
        numbers = np.array(numbers, dtype=np.int64)
    except ValueError:
        numbers = None
    if numbers is None or not np.array_equal(numbers, numbers[0] + np.arange(n_frames)):
        for k, tok in enumerate(first[is_number_line]):
            if not tok.isdigit() or int(tok) != int(first[0]) + k:
                fail(k * per_frame, f"frame number out of sequence (expected {int(first[0]) + k})")
    values = [tok for toks, num in zip(tokens, is_number_line) if not num for tok in toks[1:]]
    try:
        frames = np.array(values, dtype=np.float64)
    except ValueError:
        for i, toks in enumerate(tokens):
            if is_number_line[i]:
                continue
            for tok in toks[1:]:
                try:
                    float(tok)
                except ValueError:
                    fail(i, f"{tok!r} is not a number")
        raise  # pragma: no cover - float() and numpy agree on what a number is
    if not np.all(np.isfinite(frames)):
        k = int(np.flatnonzero(~np.isfinite(frames))[0])
        row, col = divmod(k, len(channel_names))
        offsets = np.cumsum([0] + [c for _, c in joints])
        j = int(np.searchsorted(offsets, col, side="right")) - 1
        fail(row * per_frame + 1 + j, "a value is not finite")
    return frames.reshape(n_frames, len(channel_names)), channel_names


def _amc_fast(body, joints, n_frames):
    """Frames of a well-formed AMC body from one split of the whole text, or ``None``.

    The tokens of a frame are its number, then each joint's name and values;
    with the line count, the token count, every name in place, consecutive
    frame numbers and every value a finite number, the file is well formed.
    Anything else returns ``None`` and the line-by-line check finds the line.
    """
    per_frame = len(joints) + 1
    width = 1 + sum(1 + c for _, c in joints)
    if len(body) != n_frames * per_frame:
        return None
    tokens = "\n".join(body).split()
    if len(tokens) != n_frames * width:
        return None
    table = np.array(tokens, dtype=object).reshape(n_frames, width)
    name_cols, value_cols, col = [], [], 1
    for _, count in joints:
        name_cols.append(col)
        value_cols.extend(range(col + 1, col + 1 + count))
        col += 1 + count
    if not np.all(table[:, name_cols] == np.array([j for j, _ in joints], dtype=object)):
        return None
    try:
        numbers = table[:, 0].astype(np.int64)
        values = table[:, value_cols].astype(np.float64)
    except ValueError:
        return None
    if not np.array_equal(numbers, numbers[0] + np.arange(n_frames)):
        return None
    if not np.all(np.isfinite(values)):
        return None
    return values


# ---------------------------------------------------------------------- ASF
def _rotation(axis, angle):
    """Rotation matrices about ``axis`` ("x", "y" or "z") by ``angle`` radians (any shape)."""
    angle = np.asarray(angle, dtype=np.float64)
    c, s = np.cos(angle), np.sin(angle)
    i, j = {"x": (1, 2), "y": (2, 0), "z": (0, 1)}[axis]  # the plane it turns
    k = 3 - i - j
    m = np.zeros(angle.shape + (3, 3))
    m[..., k, k] = 1.0
    m[..., i, i] = c
    m[..., j, j] = c
    m[..., i, j] = -s
    m[..., j, i] = s
    return m


def _euler(angles_deg, order):
    """Rotation that applies the axes of ``order`` one after another (column vectors)."""
    angles = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    out = np.broadcast_to(np.eye(3), angles.shape[:-1] + (3, 3)).copy()
    for k, axis in enumerate(order):
        out = _rotation(axis.lower(), angles[..., k]) @ out
    return out


class Skeleton:
    """An Acclaim ASF skeleton: bones, their axes, degrees of freedom and tree.

    Made by :func:`read_asf`. Positions follow the Acclaim conventions: a
    bone's local rotation is ``C M C⁻¹``, with ``C`` the rotation of its
    ``axis`` line (applied in the line's order) and ``M`` the rotations of
    its ``dof`` channels in the order the channels are listed; the bone's
    end is its parent's end plus the accumulated rotation applied to
    ``direction × length``.

    Attributes
    ----------
    bones : dict of str to Bunch
        Per bone: ``direction`` (unit 3-vector in the rest pose, global
        frame), ``length``, ``axis`` (degrees), ``axis_order`` (e.g.
        ``"XYZ"``), ``dof`` (channel names, e.g. ``("rx", "rz")``),
        ``parent`` and ``children``. ``"root"`` has length 0.
    dofs : dict of str to tuple of str
        Channels of every bone with any (the root's from its ``order`` line).
    root_order, root_axis : str
        The root's channel order and axis order.
    root_position, root_orientation : ndarray of shape (3,)
        The root's rest position and orientation (degrees).
    joint_names : list of str
        Bones in depth-first order from the root (the order of positions).
    segments : list of tuple of int
        ``(parent, child)`` index pairs into ``joint_names``: the lines of a
        stick figure.
    """

    def __init__(self, bones, root_order, root_axis, root_position, root_orientation):
        self.bones = bones
        self.root_order = root_order
        self.root_axis = root_axis
        self.root_position = np.asarray(root_position, dtype=np.float64)
        self.root_orientation = np.asarray(root_orientation, dtype=np.float64)
        self.dofs = {name: bone.dof for name, bone in bones.items() if bone.dof}
        order, stack = [], ["root"]
        while stack:
            name = stack.pop()
            order.append(name)
            stack.extend(reversed(bones[name].children))
        self.joint_names = order
        index = {name: i for i, name in enumerate(order)}
        self.segments = [
            (index[bones[name].parent], index[name]) for name in order if name != "root"
        ]
        # Precomputed per bone: C and C⁻¹ from the axis line.
        for bone in bones.values():
            bone.C = _euler(bone.axis, bone.axis_order)
            bone.Cinv = bone.C.T

    @property
    def channel_names(self):
        """``"joint.dof"`` for every channel, in depth-first bone order."""
        return [f"{j}.{d}" for j in self.joint_names for d in self.bones[j].dof]

    def forward_kinematics(self, frames, channel_names=None, *, fill=None, root="zero"):
        """3-D positions of every joint for each frame.

        Parameters
        ----------
        frames : array-like of shape (n_frames, n_channels) or (n_channels,)
            Channel values (degrees; root translation in the skeleton's
            length unit).
        channel_names : list of str, default=None
            ``"joint.dof"`` per column; ``None`` means
            :attr:`channel_names`. A channel of the skeleton that is not a
            column takes its value from ``fill``, else 0: so the paper's 50
            features can be drawn directly.
        fill : dict of str to float, default=None
            Values of channels missing from ``channel_names`` (e.g. the
            constant channels, ``Bunch.fill_values`` of
            :func:`load_cmu_mocap`).
        root : {"zero", "keep"}, default="zero"
            ``"zero"`` draws every frame at the origin with heading 0 (the
            root's six channels set to 0, as they are absent from the
            features); ``"keep"`` uses them.

        Returns
        -------
        positions : ndarray of shape (n_frames, n_joints, 3) or (n_joints, 3)
            End point of every bone, in :attr:`joint_names` order (the root's
            entry is its position).
        """
        frames = np.asarray(frames, dtype=np.float64)
        single = frames.ndim == 1
        frames = np.atleast_2d(frames)
        if channel_names is None:
            channel_names = self.channel_names
        column = {name: k for k, name in enumerate(channel_names)}
        if len(column) != frames.shape[1]:
            raise ValueError(
                f"frames have {frames.shape[1]} columns for {len(column)} channel names"
            )
        fill = fill or {}
        n = len(frames)

        def channel(joint, dof):
            name = f"{joint}.{dof}"
            if joint == "root" and root == "zero":
                return np.zeros(n)
            if name in column:
                return frames[:, column[name]]
            return np.full(n, float(fill.get(name, 0.0)))

        positions = np.zeros((n, len(self.joint_names), 3))
        world = {}
        for k, name in enumerate(self.joint_names):
            bone = self.bones[name]
            if name == "root":
                trans = (
                    np.stack([channel("root", d) for d in ("tx", "ty", "tz")], axis=-1)
                    + self.root_position
                )
                rot_dofs = [d for d in self.root_order if d.startswith("r")]
                angles = np.stack([channel("root", d) for d in rot_dofs], axis=-1)
                M = _euler(angles, [d[1] for d in rot_dofs])
                C = _euler(self.root_orientation, self.root_axis)
                world[name] = C @ M @ C.T
                positions[:, k] = trans
                continue
            parent = bone.parent
            if bone.dof:
                angles = np.stack([channel(name, d) for d in bone.dof], axis=-1)
                M = _euler(angles, [d[1] for d in bone.dof])
                local = bone.C @ M @ bone.Cinv
            else:
                local = np.broadcast_to(np.eye(3), (n, 3, 3))
            world[name] = world[parent] @ local
            k_parent = self.joint_names.index(parent)
            positions[:, k] = positions[:, k_parent] + world[name] @ (bone.direction * bone.length)
        return positions[0] if single else positions


def read_asf(path):
    """Read an Acclaim ASF skeleton.

    Parameters
    ----------
    path : str or path-like
        The ``.asf`` file (optionally gzip-compressed).

    Returns
    -------
    skeleton : Skeleton
        Bones (direction, length, axis, degrees of freedom), the hierarchy
        and :meth:`Skeleton.forward_kinematics`.

    Raises
    ------
    ValueError
        For a malformed file (a bone without name, direction or length, a
        number that does not parse, a hierarchy naming an unknown bone); the
        message names the file and the line.

    Examples
    --------
    >>> from sklearn_vhp.datasets import read_asf
    >>> skeleton = read_asf("12.asf")  # doctest: +SKIP
    >>> skeleton.bones["ltibia"].dof  # doctest: +SKIP
    ('rx',)
    """
    path = Path(path)
    lines = _read_text(path).splitlines()
    bones = {}
    root = Bunch(
        order="TX TY TZ RX RY RZ".split(), axis="XYZ", position=[0, 0, 0], orientation=[0, 0, 0]
    )
    section = None
    current = None
    current_line = 0

    def fail(i, what):
        raise ValueError(f"{path}, line {i + 1}: {what}: {lines[i].strip()[:80]!r}")

    def numbers(i, toks, count):
        try:
            vals = [float(t) for t in toks[:count]]
        except ValueError:
            fail(i, "expected numbers")
        if len(vals) != count:
            fail(i, f"expected {count} numbers")
        return vals

    for i, line in enumerate(lines):
        toks = line.split()
        if not toks or toks[0].startswith("#"):
            continue
        if toks[0].startswith(":"):
            section = toks[0][1:].lower()
            continue
        key = toks[0].lower()
        if section == "root":
            if key == "order":
                root.order = toks[1:]
            elif key == "axis":
                root.axis = toks[1]
            elif key == "position":
                root.position = numbers(i, toks[1:], 3)
            elif key == "orientation":
                root.orientation = numbers(i, toks[1:], 3)
        elif section == "bonedata":
            if key == "begin":
                current, current_line = {"dof": ()}, i
            elif key == "end":
                if current is None:
                    fail(i, "'end' without 'begin'")
                for field in ("name", "direction", "length"):
                    if field not in current:
                        fail(current_line, f"bone without {field}")
                current.setdefault("axis", [0.0, 0.0, 0.0])
                current.setdefault("axis_order", "XYZ")
                bones[current["name"]] = Bunch(parent=None, children=[], **current)
                current = None
            elif current is None:
                fail(i, "bone data outside 'begin' ... 'end'")
            elif key == "name":
                current["name"] = toks[1]
            elif key == "direction":
                d = np.array(numbers(i, toks[1:], 3))
                norm = np.linalg.norm(d)
                current["direction"] = d / norm if norm > 0 else d
            elif key == "length":
                current["length"] = numbers(i, toks[1:], 1)[0]
            elif key == "axis":
                current["axis"] = numbers(i, toks[1:], 3)
                current["axis_order"] = toks[4] if len(toks) > 4 else "XYZ"
            elif key == "dof":
                current["dof"] = tuple(t.lower() for t in toks[1:])
        elif section == "hierarchy":
            if key in ("begin", "end"):
                continue
            parent = toks[0]
            if parent != "root" and parent not in bones:
                fail(i, f"unknown bone {parent!r}")
            for child in toks[1:]:
                if child not in bones:
                    fail(i, f"unknown bone {child!r}")
                bones[child].parent = parent
                if parent != "root":
                    bones[parent].children.append(child)
                else:
                    root.setdefault("children", []).append(child)
    root_dof = tuple(t.lower() for t in root.order)
    bones["root"] = Bunch(
        name="root",
        direction=np.zeros(3),
        length=0.0,
        axis=list(root.orientation),
        axis_order=root.axis,
        dof=root_dof,
        parent=None,
        children=root.get("children", []),
    )
    orphans = [name for name, bone in bones.items() if name != "root" and bone.parent is None]
    if orphans:
        raise ValueError(f"{path}: bones missing from the hierarchy: {', '.join(orphans)}")
    return Skeleton(bones, root_dof, root.axis, root.position, root.orientation)


# ---------------------------------------------------------------- labels
def _read_labels(path, n_frames):
    text = _read_text(path)
    values, where = [], []
    for i, line in enumerate(text.splitlines()):
        for tok in line.split():
            try:
                values.append(int(tok))
            except ValueError:
                raise ValueError(f"{path}, line {i + 1}: {tok!r} is not an integer label") from None
            where.append(i + 1)
    expected = math.ceil(n_frames / FRAMES_PER_WINDOW)
    if len(values) != expected:
        line = where[-1] if where else 1
        raise ValueError(
            f"{path}, line {line}: {len(values)} labels for {n_frames} frames; expected "
            f"{expected}, one per window of {FRAMES_PER_WINDOW} frames"
        )
    labels = np.array(values, dtype=np.int64)
    bad = np.flatnonzero((labels < 1) | (labels > len(CMU_LABEL_NAMES)))
    if bad.size:
        raise ValueError(
            f"{path}, line {where[bad[0]]}: label {labels[bad[0]]} outside "
            f"1..{len(CMU_LABEL_NAMES)}"
        )
    return labels


def _amc_paths(paths):
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    out = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(p.glob("*.amc")) + sorted(p.glob("*.amc.gz"))
            if not found:
                raise FileNotFoundError(f"{p}: no .amc or .amc.gz files in this folder")
            out.extend(sorted(found))
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such file or folder")
    if not out:
        raise ValueError("paths is empty")
    return out


def _labels_path(amc):
    name = amc.name
    for suffix in (".amc.gz", ".amc"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return amc.with_name(name + ".labels.txt")


def _stem(amc):
    name = amc.name
    for suffix in (".gz", ".amc"):
        name = name.removesuffix(suffix)
    return name


def load_cmu_mocap(paths, *, fps=30, labels="auto", source_fps=CMU_FPS):
    """Load CMU motion capture recordings as the paper's 50 features per frame.

    Each AMC file gives 62 channels per frame; the root's six (global
    position and heading) and the six that CMU's skeleton never moves (both
    clavicles' ``ry``/``rz``, both fingers' ``rx``) are left out, as in the
    paper's Sec. 4.2, leaving 50 joint angles in degrees.

    Parameters
    ----------
    paths : str, path-like, or list of them
        AMC files (``.amc`` or gzipped ``.amc.gz``) or folders holding them
        (every ``*.amc`` and ``*.amc.gz`` inside, sorted by name).
    fps : int, default=30
        Frames per second kept. Frames are *picked*, every
        ``source_fps // fps``-th from the first, not averaged: averaging
        angles would blur the motion the smoothness factor measures and is
        wrong where a channel wraps around ±180°. ``source_fps`` must be a
        multiple of ``fps``.
    labels : {"auto", True, False}, default="auto"
        Read the exercise of each frame from the ``.labels.txt`` beside each
        AMC file (one integer per 0.1 s window: window ``t`` covers frames
        ``12 t + 1 ... 12 t + 12``). ``"auto"``: when the file exists,
        else ``-1``; ``True``: a missing file is an error; ``False``: all
        ``-1``.
    source_fps : int, default=120
        Frame rate of the files (CMU records at 120 fps).

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        Dictionary-like object with:

        data : ndarray of shape (n_frames, 50)
            Joint angles in degrees.
        target : ndarray of shape (n_frames,)
            Index of the exercise in ``target_names``; ``-1`` where a frame
            has no label.
        target_names : ndarray of shape (12,)
            The exercises of the annotation (Fox et al., 2014).
        feature_names : list of str
            ``"joint.dof"`` of each column.
        sequence : ndarray of shape (n_frames,)
            The recording each frame came from (e.g. ``"13_29"``).
        frame : ndarray of shape (n_frames,)
            The frame's index in its file (0-based, at ``source_fps``).
        fps : int
            Frames per second of ``data``.
        channel_names : list of str
            The 62 channels of a file, in file order.
        fill_values : dict of str to float
            Value of each left-out channel: the root's six as 0 (stick
            figures are drawn at the origin, heading 0), the constant ones
            as read. See :func:`features_to_channels`.
        DESCR : str
            Description of the data.

    Raises
    ------
    ValueError
        For a malformed file (see :func:`read_amc`), a labels file whose
        length does not match the frames, a recording with a different
        channel layout, or an ``fps`` that does not divide ``source_fps``.
        Nothing is returned half-loaded.

    Examples
    --------
    >>> from sklearn_vhp.datasets import load_cmu_mocap
    >>> mocap = load_cmu_mocap("../shared/data/cmu_mocap")  # doctest: +SKIP
    >>> mocap.data.shape  # doctest: +SKIP
    (3684, 50)
    """
    if isinstance(fps, bool) or not isinstance(fps, (int, np.integer)) or fps < 1:
        raise ValueError(f"fps must be a positive integer, got {fps!r}")
    if source_fps % fps:
        raise ValueError(
            f"fps={fps} does not divide the recordings' {source_fps} frames per second: "
            "frames are picked, every (source_fps // fps)-th"
        )
    if labels not in ("auto", True, False):
        raise ValueError(f"labels must be 'auto', True or False, got {labels!r}")
    step = source_fps // fps
    datas, targets, sequences, frame_idx = [], [], [], []
    channel_names = None
    for amc in _amc_paths(paths):
        frames, names = read_amc(amc)
        if channel_names is None:
            channel_names = names
            missing = [c for c in CMU_ROOT_CHANNELS + CMU_CONSTANT_CHANNELS if c not in names]
            if missing:
                raise ValueError(f"{amc}: not the CMU channel layout (no {', '.join(missing)})")
            dropped = set(CMU_ROOT_CHANNELS + CMU_CONSTANT_CHANNELS)
            keep = np.array([c not in dropped for c in names])
            constant = [names.index(c) for c in CMU_CONSTANT_CHANNELS]
            sums = np.zeros(len(constant))
            total = 0
        elif names != channel_names:
            raise ValueError(f"{amc}: channel layout differs from the first recording's")
        n = len(frames)
        sums += frames[:, constant].sum(axis=0)
        total += n
        lab_path = _labels_path(amc)
        if labels is True or (labels == "auto" and lab_path.is_file()):
            if not lab_path.is_file():
                raise FileNotFoundError(f"{lab_path}: labels file not found (labels=True)")
            windows = _read_labels(lab_path, n) - 1
        else:
            windows = None
        picked = np.arange(0, n, step)
        datas.append(frames[picked][:, keep])
        targets.append(
            windows[picked // FRAMES_PER_WINDOW]
            if windows is not None
            else np.full(len(picked), -1)
        )
        sequences.append(np.full(len(picked), _stem(amc), dtype=object))
        frame_idx.append(picked)
    feature_names = [c for c, k in zip(channel_names, keep) if k]
    # The left-out channels, for drawing: the root at the origin, heading 0;
    # the constant ones at their mean over the frames read.
    fill = {c: 0.0 for c in CMU_ROOT_CHANNELS}
    fill.update({c: float(v) for c, v in zip(CMU_CONSTANT_CHANNELS, sums / total)})
    return Bunch(
        data=np.concatenate(datas),
        target=np.concatenate(targets).astype(np.int64),
        target_names=np.array(CMU_LABEL_NAMES),
        feature_names=feature_names,
        sequence=np.concatenate(sequences),
        frame=np.concatenate(frame_idx),
        fps=int(fps),
        channel_names=list(channel_names),
        fill_values=fill,
        DESCR=__doc__,
    )


def features_to_channels(features, feature_names, channel_names, fill_values):
    """Map rows of features back to all channels of a frame.

    Parameters
    ----------
    features : array-like of shape (n_frames, n_features)
        E.g. decoded rows of the paper's 50 features.
    feature_names : list of str
        Channel of each feature column (``Bunch.feature_names``).
    channel_names : list of str
        All channels, in the order wanted (``Bunch.channel_names``).
    fill_values : dict of str to float
        Value of every channel that is not a feature (``Bunch.fill_values``).

    Returns
    -------
    frames : ndarray of shape (n_frames, len(channel_names))
        Ready for :func:`read_amc`'s layout and
        :meth:`Skeleton.forward_kinematics`.
    """
    features = np.atleast_2d(np.asarray(features, dtype=np.float64))
    if features.shape[1] != len(feature_names):
        raise ValueError(
            f"features have {features.shape[1]} columns for {len(feature_names)} names"
        )
    column = {name: k for k, name in enumerate(feature_names)}
    out = np.empty((len(features), len(channel_names)))
    for j, name in enumerate(channel_names):
        if name in column:
            out[:, j] = features[:, column[name]]
        elif name in fill_values:
            out[:, j] = fill_values[name]
        else:
            raise ValueError(f"channel {name!r} is neither a feature nor in fill_values")
    return out
