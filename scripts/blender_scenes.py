"""Render robot workcells with Blender (Cycles) into .npz files that `scripts/make_blender_bags.sh` turns into
contract bags: a third renderer, beside the procedural generator and MuJoCo, with what neither has (path-traced
soft shadows and bounce light, anti-aliased edges, Blender's default AgX view transform).

Runs inside Blender's Python (`pip install bpy "numpy<2" pillow` in a venv of its own: bpy needs numpy < 2), not
in the package's environment:

    python scripts/blender_scenes.py --out DIR [--seeds 0 1 2 3] [--frames 12] [--cameras 6] [--resolution 128]

Each scene (one per seed): a textured floor plane (checker, brick or noise, 12-20 m across, the world's colour
beyond it), a five-link arm of boxes and cylinders on a pedestal that swings its joints sinusoidally, two to four
boxes on the floor, a sun and an area light, and a synchronized rig of workcell cameras 1.6-3 m from the arm at
0.9-1.9 m height looking at it (vertical field of view 45-65°). Frames are 0.1 s apart. Depth is each pixel
centre's z-depth ray-cast against the scene (0 where the ray meets nothing), as a depth camera measures it; the
colour is Cycles' anti-aliased render (32 samples, denoised).

Writes DIR/blender_<seed>.npz: images (V,H,W,3) uint8, depths (V,H,W) float32 metres, Ks (V,3,3), camtoworlds
(V,4,4) (optical frame: x right, y down, z forward), stamps_ns (V,), camera_ids (V,), frame-major.
"""
from __future__ import annotations

import argparse
import math
import os
import tempfile
from pathlib import Path

import bpy
import numpy as np
from mathutils import Euler, Vector
from PIL import Image

FPS = 10.0
BASE_NS = 1_700_000_000 * 10**9


def _material(name: str, rng: np.random.Generator, kind: str | None = None) -> bpy.types.Material:
    """A principled material: a plain colour, or (kind) a checker / brick / noise texture in world coordinates."""
    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    bsdf = nodes["Principled BSDF"]
    bsdf.inputs["Roughness"].default_value = float(rng.uniform(0.3, 0.8))
    c1 = (*rng.uniform(0.05, 0.9, 3), 1.0)
    if kind is None:
        bsdf.inputs["Base Color"].default_value = c1
        return mat
    c2 = (*rng.uniform(0.05, 0.9, 3), 1.0)
    coords = nodes.new("ShaderNodeTexCoord")
    tex = nodes.new({"checker": "ShaderNodeTexChecker", "brick": "ShaderNodeTexBrick",
                     "noise": "ShaderNodeTexNoise"}[kind])
    if kind == "noise":
        ramp = nodes.new("ShaderNodeValToRGB")
        ramp.color_ramp.elements[0].color, ramp.color_ramp.elements[1].color = c1, c2
        tex.inputs["Scale"].default_value = float(rng.uniform(0.8, 2.5))
        tex.inputs["Detail"].default_value = 6.0
        links.new(tex.outputs["Fac"], ramp.inputs["Fac"])
        links.new(ramp.outputs["Color"], bsdf.inputs["Base Color"])
    else:
        tex.inputs["Color1"].default_value, tex.inputs["Color2"].default_value = c1, c2
        tex.inputs["Scale"].default_value = float(rng.uniform(0.6, 1.6)) if kind == "checker" else \
            float(rng.uniform(0.4, 0.9))
        links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    links.new(coords.outputs["Object"], tex.inputs["Vector"])
    return mat


def _add(kind: str, size, location, mat, parent=None):
    """A box (size = (x, y, z) full extents) or a z-aligned cylinder (size = (radius, length)) as a mesh object."""
    if kind == "box":
        bpy.ops.mesh.primitive_cube_add(size=1.0, location=location)
        obj = bpy.context.object
        obj.scale = size
    else:
        bpy.ops.mesh.primitive_cylinder_add(vertices=32, radius=size[0], depth=size[1], location=location)
        obj = bpy.context.object
    obj.data.materials.append(mat)
    if parent is not None:
        obj.parent = parent
        obj.matrix_parent_inverse = parent.matrix_world.inverted()
    return obj


def _empty(location, parent=None):
    bpy.ops.object.empty_add(location=location)
    e = bpy.context.object
    if parent is not None:
        e.parent = parent
        e.matrix_parent_inverse = parent.matrix_world.inverted()
    return e


def build_scene(seed: int, resolution: int):
    """A fresh scene for `seed` -> (the arm's joints [(empty, axis, amplitude rad, frequency Hz, phase)], centre)."""
    rng = np.random.default_rng(seed)
    bpy.ops.wm.read_factory_settings(use_empty=True)
    scene = bpy.context.scene
    scene.render.engine = "CYCLES"
    scene.cycles.device = "CPU"
    scene.cycles.samples = 32
    scene.cycles.use_denoising = True
    scene.render.resolution_x = scene.render.resolution_y = resolution
    scene.render.resolution_percentage = 100
    scene.render.image_settings.file_format = "PNG"
    scene.render.image_settings.color_mode = "RGB"
    scene.render.threads_mode = "FIXED"
    scene.render.threads = max(1, os.cpu_count() or 1)
    world = bpy.data.worlds.new("world")
    scene.world = world
    world.use_nodes = True
    sky = (*rng.uniform(0.2, 0.9, 3), 1.0)
    world.node_tree.nodes["Background"].inputs["Color"].default_value = sky
    world.node_tree.nodes["Background"].inputs["Strength"].default_value = float(rng.uniform(0.3, 0.8))

    half = float(rng.uniform(6.0, 10.0))
    bpy.ops.mesh.primitive_plane_add(size=2 * half, location=(0, 0, 0))
    bpy.context.object.data.materials.append(_material("floor", rng, str(rng.choice(["checker", "brick", "noise"]))))

    bpy.ops.object.light_add(type="SUN", location=(0, 0, 5))
    sun = bpy.context.object
    sun.data.energy = float(rng.uniform(2.0, 4.0))
    sun.data.angle = math.radians(float(rng.uniform(2, 10)))  # soft shadows
    sun.rotation_euler = Euler((math.radians(rng.uniform(20, 50)), 0, math.radians(rng.uniform(0, 360))))
    bpy.ops.object.light_add(type="AREA", location=(float(rng.uniform(-2, 2)), float(rng.uniform(-2, 2)), 3.0))
    bpy.context.object.data.energy = float(rng.uniform(100, 300))
    bpy.context.object.data.size = 2.0

    # the arm: pedestal, a turntable joint about z, then shoulder, elbow and wrist joints about local y
    arm = _material("arm", rng)
    accent = _material("accent", rng)
    _add("cyl", (0.18, 0.3), (0, 0, 0.15), accent)
    base = _empty((0, 0, 0.3))
    _add("cyl", (0.14, 0.2), (0, 0, 0.4), arm, base)
    shoulder = _empty((0, 0, 0.5), base)
    lengths = rng.uniform(0.35, 0.55, 3)
    z, joints, parent = 0.5, [(base, 2, float(rng.uniform(0.6, 1.2)))], shoulder
    joints.append((shoulder, 1, float(rng.uniform(0.3, 0.6))))
    for k, length in enumerate(lengths):
        _add("box", (0.1, 0.1, float(length)), (0, 0, z + length / 2), arm if k % 2 == 0 else accent, parent)
        z += float(length)
        if k < 2:
            nxt = _empty((0, 0, z), parent)
            _add("cyl", (0.07, 0.14), (0, 0, z), accent, nxt).rotation_euler = Euler((math.pi / 2, 0, 0))
            joints.append((nxt, 1, float(rng.uniform(0.4, 0.9))))
            parent = nxt
    _add("box", (0.16, 0.05, 0.08), (0, 0, z + 0.04), accent, parent)  # gripper
    joint_motion = [(e, axis, amp, float(rng.uniform(0.2, 0.6)), float(rng.uniform(0, 2 * math.pi)))
                    for e, axis, amp in joints]

    for i in range(int(rng.integers(2, 5))):
        r, a = float(rng.uniform(0.7, 1.6)), float(rng.uniform(0, 2 * math.pi))
        s = rng.uniform(0.15, 0.45, 3)
        _add("box", tuple(float(x) for x in s), (r * math.cos(a), r * math.sin(a), float(s[2]) / 2),
             _material(f"box{i}", rng, "noise" if i % 2 else None)).rotation_euler = Euler((0, 0, a))
    return joint_motion, Vector((0.0, 0.0, 0.8)), rng


def pose_arm(joints, t: float) -> None:
    for empty, axis, amp, freq, phase in joints:
        rot = list(empty.rotation_euler)
        rot[axis] = amp * math.sin(2 * math.pi * freq * t + phase)
        empty.rotation_euler = Euler(rot)
    bpy.context.view_layer.update()


def add_cameras(n: int, centre: Vector, rng: np.random.Generator):
    """n cameras spread around the arm (azimuths jittered from even), looking at `centre` -> [(camera, fov_y)]."""
    cams = []
    a0 = float(rng.uniform(0, 2 * math.pi))
    for c in range(n):
        a = a0 + 2 * math.pi * c / n + float(rng.uniform(-0.3, 0.3))
        r, h = float(rng.uniform(1.6, 3.0)), float(rng.uniform(0.9, 1.9))
        bpy.ops.object.camera_add(location=(r * math.cos(a), r * math.sin(a), h))
        cam = bpy.context.object
        target = centre + Vector(tuple(float(x) for x in rng.uniform(-0.15, 0.15, 3)))
        cam.rotation_euler = (target - cam.location).to_track_quat("-Z", "Y").to_euler()
        fov = math.radians(float(rng.uniform(45, 65)))
        cam.data.sensor_fit = "VERTICAL"
        cam.data.angle_y = fov
        cams.append((cam, fov))
    return cams


def intrinsics(fov_y: float, size: int) -> np.ndarray:
    f = 0.5 * size / math.tan(0.5 * fov_y)
    c = (size - 1) / 2.0
    return np.array([[f, 0, c], [0, f, c], [0, 0, 1.0]])


def optical_pose(cam) -> np.ndarray:
    """Camera-to-world (4,4) of the optical frame (x right, y down, z forward): Blender's camera looks down -z."""
    m = np.array(cam.matrix_world)
    m[:3, :3] = m[:3, :3] @ np.diag([1.0, -1.0, -1.0])
    return m


def ray_depths(c2w: np.ndarray, K: np.ndarray, size: int) -> np.ndarray:
    """(size,size) z-depth of every pixel centre from the evaluated scene (0: the ray meets nothing)."""
    depsgraph = bpy.context.evaluated_depsgraph_get()
    scene = bpy.context.scene
    origin = Vector(c2w[:3, 3])
    v, u = np.mgrid[0:size, 0:size]
    d_cam = np.stack([u, v, np.ones_like(u)], -1).reshape(-1, 3) @ np.linalg.inv(K).T  # z = 1
    dirs = d_cam @ c2w[:3, :3].T
    norms = np.linalg.norm(dirs, axis=1)
    out = np.zeros(size * size, np.float32)
    for i, (d, n) in enumerate(zip(dirs / norms[:, None], norms)):
        hit, loc, *_ = scene.ray_cast(depsgraph, origin, Vector(d), distance=1e4)
        if hit:
            out[i] = (loc - origin).length / n  # distance along the ray / its length at z = 1
    return out.reshape(size, size)


def render_scene(seed: int, frames: int, cameras: int, size: int, out: Path) -> None:
    joints, centre, rng = build_scene(seed, size)
    cams = add_cameras(cameras, centre, rng)
    V = frames * cameras
    images = np.zeros((V, size, size, 3), np.uint8)
    depths = np.zeros((V, size, size), np.float32)
    Ks, c2ws = np.zeros((V, 3, 3)), np.zeros((V, 4, 4))
    stamps, ids = np.zeros(V, np.int64), np.zeros(V, np.int64)
    scene = bpy.context.scene
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(frames):
            t = k / FPS
            pose_arm(joints, t)
            for c, (cam, fov) in enumerate(cams):
                v = k * cameras + c
                scene.camera = cam
                scene.render.filepath = os.path.join(tmp, f"{v}.png")
                bpy.ops.render.render(write_still=True)
                images[v] = np.asarray(Image.open(scene.render.filepath).convert("RGB"))
                Ks[v], c2ws[v] = intrinsics(fov, size), optical_pose(cam)
                depths[v] = ray_depths(c2ws[v], Ks[v], size)
                stamps[v], ids[v] = BASE_NS + round(t * 1e9), c
            print(f"blender_{seed}: frame {k + 1}/{frames}", flush=True)
    np.savez_compressed(out / f"blender_{seed}.npz", images=images, depths=depths, Ks=Ks, camtoworlds=c2ws,
                        stamps_ns=stamps, camera_ids=ids)
    print(f"wrote {out / f'blender_{seed}.npz'}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3])
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--cameras", type=int, default=6)
    ap.add_argument("--resolution", type=int, default=128)
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for seed in args.seeds:
        render_scene(seed, args.frames, args.cameras, args.resolution, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
