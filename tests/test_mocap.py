"""Acclaim readers, the CMU loader and forward kinematics (paper Sec. 4.2)."""

import gzip
import re
from pathlib import Path

import numpy as np
import pytest

from sklearn_vhp.datasets import (
    features_to_channels,
    load_cmu_mocap,
    read_amc,
    read_asf,
)

MOCAP = Path(__file__).resolve().parents[2] / "shared" / "data" / "cmu_mocap"
RECORDINGS = ("13_29", "13_30", "13_31", "14_14")
needs_data = pytest.mark.skipif(not (MOCAP / "13_29.amc.gz").exists(), reason="no shared data")

# A tiny skeleton-free AMC layout: two joints, root (6 values) and knee (1).
HEADER = "#!OML:ASF test\n:FULLY-SPECIFIED\n:DEGREES\n"


def _frame(k, root=(0, 1, 2, 3, 4, 5), knee=(10,)):
    return f"{k}\nroot {' '.join(map(str, root))}\nknee {' '.join(map(str, knee))}\n"


def _write(path, text, *, gz=False, crlf=False):
    if crlf:
        text = text.replace("\n", "\r\n")
    data = text.encode()
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


# ------------------------------------------------------------------ readers
@pytest.mark.parametrize("gz", [False, True])
def test_read_amc_plain_and_gzip_give_the_same_frames(tmp_path, gz):
    text = HEADER + "".join(_frame(k, knee=(k * 1.5,)) for k in range(1, 5))
    frames, names = read_amc(_write(tmp_path / "m.amc", text, gz=gz, crlf=True))
    assert names == ["root.tx", "root.ty", "root.tz", "root.rx", "root.ry", "root.rz", "knee.0"]
    assert frames.shape == (4, 7)
    np.testing.assert_array_equal(frames[:, -1], [1.5, 3.0, 4.5, 6.0])
    np.testing.assert_array_equal(frames[2, :6], [0, 1, 2, 3, 4, 5])


@pytest.mark.parametrize(
    "body, line, message",
    [
        # frame 2 lacks its knee: the next frame number sits where the knee belongs
        (_frame(1) + "2\nroot 0 1 2 3 4 5\n" + _frame(3), 9, "expected joint 'knee' in frame 2"),
        (_frame(1) + _frame(2, knee=(1, 2)), 9, "has 2 values, expected 1"),
        (_frame(1) + _frame(2, root=(0, 1, 2, 3, 4)), 8, "has 5 values, expected 6"),
        (_frame(1) + _frame(2, knee=("abc",)), 9, "'abc' is not a number"),
        (_frame(1) + _frame(3), 7, "out of sequence"),
        (_frame(1) + "2\nroot 0 1 2 3 4 5\n", 8, "ends inside frame 2"),
        ("root 0 1 2 3 4 5\n", 4, "expected a frame number"),
    ],
)
def test_read_amc_malformed_names_file_and_line(tmp_path, body, line, message):
    path = _write(tmp_path / "bad.amc", HEADER + body)
    with pytest.raises(ValueError, match=re.escape(f"{path}, line {line}: ") + ".*" + message):
        read_amc(path)


def test_read_amc_truncated_gzip(tmp_path):
    text = HEADER + "".join(_frame(k) for k in range(1, 200))
    whole = gzip.compress(text.encode())
    path = tmp_path / "cut.amc.gz"
    path.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(ValueError, match=re.escape(str(path)) + ".*truncated gzip"):
        read_amc(path)


def _recording(folder, name, n_frames, labels=None, **frame_kw):
    """A CMU-layout recording: 62 channels, the constant ones fixed."""
    from sklearn_vhp.datasets._mocap import CMU_DOFS

    rng = np.random.default_rng(n_frames)
    lines = [HEADER.strip()]
    for k in range(1, n_frames + 1):
        lines.append(str(k))
        for joint, dofs in CMU_DOFS.items():
            if joint.endswith("clavicle"):
                vals = [0.0, 0.0]
            elif joint.endswith("fingers"):
                vals = [7.12502]
            else:
                vals = np.round(rng.normal(size=len(dofs)) * 10 + k, 4)
            lines.append(joint + " " + " ".join(map(str, vals)))
    _write(folder / f"{name}.amc.gz", "\n".join(lines) + "\n", gz=True, crlf=True)
    if labels is not None:
        (folder / f"{name}.labels.txt").write_text(" ".join(map(str, labels)) + " \n")
    return folder / f"{name}.amc.gz"


def test_load_cmu_mocap_labels_windows_and_picking(tmp_path):
    # 30 frames at 120 fps: windows 0, 1 (frames 1-12, 13-24) and a short one (25-30).
    path = _recording(tmp_path, "01_01", 30, labels=[3, 1, 12])
    full = load_cmu_mocap(path, fps=120)
    assert full.data.shape == (30, 50) and len(full.feature_names) == 50
    np.testing.assert_array_equal(full.target, [2] * 12 + [0] * 12 + [11] * 6)
    assert full.target_names[11] == "ToeTouchTwoHands"
    frames, names = read_amc(path)
    keep = [names.index(f) for f in full.feature_names]
    np.testing.assert_array_equal(full.data, frames[:, keep])
    assert not {"root.tx", "lclavicle.ry", "rfingers.rx"} & set(full.feature_names)
    # 30 fps picks frames 0, 4, 8, ... (no averaging)
    quarter = load_cmu_mocap([path], fps=30)
    np.testing.assert_array_equal(quarter.frame, np.arange(0, 30, 4))
    np.testing.assert_array_equal(quarter.data, full.data[::4])
    np.testing.assert_array_equal(quarter.target, full.target[::4])
    assert quarter.fps == 30 and set(quarter.sequence) == {"01_01"}
    # Decoded features map back to all 62 channels, constants filled in.
    back = features_to_channels(
        quarter.data, quarter.feature_names, quarter.channel_names, quarter.fill_values
    )
    np.testing.assert_allclose(back[:, 6:], frames[::4, 6:])
    np.testing.assert_array_equal(back[:, :6], 0.0)


def test_load_cmu_mocap_folder_list_and_missing_labels(tmp_path):
    a = _recording(tmp_path, "01_01", 24, labels=[2, 4])
    b = _recording(tmp_path, "01_02", 12)  # no labels file
    folder = load_cmu_mocap(tmp_path, fps=60)
    listed = load_cmu_mocap([a, b], fps=60)
    np.testing.assert_array_equal(folder.data, listed.data)
    np.testing.assert_array_equal(folder.sequence, ["01_01"] * 12 + ["01_02"] * 6)
    np.testing.assert_array_equal(folder.target, [1] * 6 + [3] * 6 + [-1] * 6)
    assert np.all(load_cmu_mocap(a, labels=False).target == -1)
    with pytest.raises(FileNotFoundError, match="01_02.labels.txt"):
        load_cmu_mocap(tmp_path, labels=True)
    with pytest.raises(ValueError, match="does not divide"):
        load_cmu_mocap(a, fps=7)


def test_load_cmu_mocap_label_length_mismatch_names_the_file(tmp_path):
    path = _recording(tmp_path, "01_01", 30, labels=[1, 2])  # 3 windows needed
    labels = tmp_path / "01_01.labels.txt"
    with pytest.raises(ValueError, match=re.escape(f"{labels}, line 1: 2 labels for 30 frames")):
        load_cmu_mocap(path)
    labels.write_text("1 2\n3 x\n")
    with pytest.raises(ValueError, match=re.escape(f"{labels}, line 2: 'x'")):
        load_cmu_mocap(path)


def test_load_cmu_mocap_a_bad_file_loads_nothing(tmp_path):
    _recording(tmp_path, "01_01", 12, labels=[1])
    bad = tmp_path / "01_02.amc"
    _write(bad, HEADER + "1\nroot 0 0 0 0 0 0\nlowerback 1 2 x\n")
    with pytest.raises(ValueError, match=re.escape(f"{bad}, line 6")):
        load_cmu_mocap(tmp_path)


@needs_data
def test_load_the_four_recordings():
    mocap = load_cmu_mocap(MOCAP, fps=120)
    counts = {"13_29": 4592, "13_30": 2465, "13_31": 3017, "14_14": 4653}
    assert {s: int(np.sum(mocap.sequence == s)) for s in RECORDINGS} == counts
    assert mocap.data.shape == (sum(counts.values()), 50)
    assert np.all(mocap.target >= 0)  # every frame is annotated
    # README: windows per label. A window is 12 frames; count first frames of windows.
    first = mocap.frame % 12 == 0
    names, n = np.unique(mocap.target_names[mocap.target[first]], return_counts=True)
    assert dict(zip(names, n.tolist())) == {
        "JumpJack": 120,
        "Jog": 131,
        "Squat": 156,
        "KneeRaise": 248,
        "ArmCircle": 223,
        "Twist": 252,
        "ToeTouchOneHand": 99,
    }
    # The left-out channels are the constant ones: every kept channel moves
    # (by degrees), every dropped non-root channel stays within 1e-9 degrees.
    for name in RECORDINGS:
        frames, channels = read_amc(MOCAP / f"{name}.amc.gz")
        span = np.ptp(frames, axis=0)
        kept = np.isin(channels, mocap.feature_names)
        assert span[kept].min() > 1.0
        dropped = [c for c in channels if c not in mocap.feature_names and not c.startswith("root")]
        assert len(dropped) == 6
        assert span[[channels.index(c) for c in dropped]].max() < 1e-9


# --------------------------------------------------------------- kinematics
@needs_data
def test_rest_pose_accumulates_directions_times_lengths():
    skeleton = read_asf(MOCAP / "12.asf")
    assert len(skeleton.channel_names) == 62
    _, amc_channels = read_amc(MOCAP / "13_30.amc.gz")
    assert set(skeleton.channel_names) == set(amc_channels)
    rest = skeleton.forward_kinematics(np.zeros(62))
    index = {name: k for k, name in enumerate(skeleton.joint_names)}
    bones = skeleton.bones
    for name in ("ltoes", "head", "rthumb"):
        expected, joint = np.zeros(3), name
        while joint != "root":
            expected += bones[joint].direction * bones[joint].length
            joint = bones[joint].parent
        np.testing.assert_allclose(rest[index[name]], expected, atol=1e-12)


@needs_data
def test_knee_bent_90_degrees_puts_the_shin_backwards():
    skeleton = read_asf(MOCAP / "12.asf")
    names = skeleton.channel_names
    frame = np.zeros(len(names))
    frame[names.index("ltibia.rx")] = 90.0
    pose = skeleton.forward_kinematics(frame, names)
    index = {name: k for k, name in enumerate(skeleton.joint_names)}
    knee, ankle = pose[index["lfemur"]], pose[index["ltibia"]]
    length = skeleton.bones["ltibia"].length
    # z points forward (the toes' direction), y up: the lower leg points straight back
    # (up to the 6 digits of the ASF's direction and axis, 20° about z).
    np.testing.assert_allclose(ankle - knee, [0.0, 0.0, -length], atol=1e-5)
    # The right leg and the thigh do not move.
    rest = skeleton.forward_kinematics(np.zeros(len(names)), names)
    np.testing.assert_allclose(pose[index["rtibia"]], rest[index["rtibia"]])
    np.testing.assert_allclose(knee, rest[index["lfemur"]])
    # Root channels are ignored by default (drawn at the origin, heading 0).
    frame[names.index("root.ry")] = 90.0
    frame[names.index("root.tx")] = 5.0
    np.testing.assert_allclose(skeleton.forward_kinematics(frame, names), pose)
    moved = skeleton.forward_kinematics(frame, names, root="keep")
    np.testing.assert_allclose(moved[index["root"]], [5.0, 0.0, 0.0])


@needs_data
def test_plot_pose_strip_draws_one_figure_per_frame():
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sklearn_vhp.plotting import plot_pose, plot_pose_strip

    skeleton = read_asf(MOCAP / "12.asf")
    mocap = load_cmu_mocap(MOCAP / "13_30.amc.gz", fps=10)
    fig, ax = plt.subplots()
    plot_pose_strip(
        skeleton, mocap.data[:20], mocap.feature_names, ax, fill=mocap.fill_values, n_frames=4
    )
    assert len(ax.collections) == 4
    n_bones = len(skeleton.joint_names) - 1
    first, last = (np.asarray(c.get_segments()) for c in (ax.collections[0], ax.collections[-1]))
    assert first.shape == (n_bones, 2, 2)
    assert last[:, :, 0].min() > first[:, :, 0].max()  # left to right, no overlap
    fig2, ax2 = plt.subplots()
    plot_pose(skeleton, mocap.data[0], mocap.feature_names, ax2, fill=mocap.fill_values)
    np.testing.assert_allclose(np.asarray(ax2.collections[0].get_segments()), first)
    plt.close(fig)
    plt.close(fig2)


def test_features_to_channels_needs_every_channel():
    with pytest.raises(ValueError, match="'b.rx' is neither a feature nor in fill_values"):
        features_to_channels(np.zeros((2, 1)), ["a.rx"], ["a.rx", "b.rx"], {})
    out = features_to_channels(np.ones((2, 1)), ["a.rx"], ["b.rx", "a.rx"], {"b.rx": 7.0})
    np.testing.assert_array_equal(out, [[7.0, 1.0], [7.0, 1.0]])
