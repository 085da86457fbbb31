"""Speed of the pure-jnp renderer on the ICT face mesh at 224 x 224, against OpenGL (Mesa).

Usage:
  python3 benchmarks/render_bench.py [--batches 1 32] [--repeats 5] [--no-opengl]

Prints milliseconds per frame (the best of --repeats timed calls after a warm-up, divided by the
batch) for:
  primitives   rasterize + interpolate (per-vertex colour) + antialias (colour and mask), from
               screen-space vertices; forward, and forward + backward of a photometric loss with
               respect to vertex positions and colours.
  render_face  the whole face render from coefficients (shape, pose, SH shading, projection,
               the primitives, landmarks); forward, and forward + backward with respect to all
               coefficients.
  opengl       the same mesh and per-vertex colours drawn by OpenGL through moderngl on a
               headless EGL context (Mesa's llvmpipe software rasterizer here: no GPU), one draw
               and one framebuffer read per frame. Forward only (not differentiable). Skipped
               with a note if moderngl or EGL is unavailable (`pip install moderngl`).
The face model comes from `cpem_jax.face_model.registry.load_face_model` (CPEM_FACE_MODEL, or
the ICT-FaceKit archive under $CPEM_SHARED/assets or ../shared/assets).
Figures are recorded in experiments/renderer/README.md.
"""
from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from cpem_jax.face_model.registry import load_face_model
from cpem_jax.geometry.camera import default_camera
from cpem_jax.geometry.pipeline import face_geometry
from cpem_jax.geometry.shading import ambient_lighting
from cpem_jax.render.antialias import antialias, edge_neighbors
from cpem_jax.render.face_renderer import map_in_chunks, render_face
from cpem_jax.render.interpolate import interpolate
from cpem_jax.render.rasterize import rasterize

SIZE = 224


def best_ms_per_frame(fn, args, batch, repeats):
    jax.block_until_ready(fn(*args))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn(*args))
        times.append(time.perf_counter() - start)
    return 1e3 * min(times) / batch


def face_inputs(model, batch, seed=0):
    """Coefficients [B] with small random pose/expression, and their screen-space vertices."""
    rng = np.random.default_rng(seed)
    coeffs = model.layout().zeros((batch,))
    coeffs = coeffs.replace(
        expression=jnp.asarray(rng.uniform(0, 0.3, (batch, model.n_expression)), jnp.float32),
        rotation=jnp.asarray(rng.uniform(-0.2, 0.2, (batch, 3)), jnp.float32),
        lighting=ambient_lighting(0.8, (batch,)).at[..., 2].set(0.2))
    geometry = jax.jit(lambda c: face_geometry(model, c, default_camera(SIZE)))(coeffs)
    verts = jnp.concatenate([geometry.uv, geometry.depth[..., None]], axis=-1)
    return coeffs, verts, geometry.colors


def jax_timings(model, batch, repeats, chunk):
    triangles = jnp.asarray(model.triangles)
    neighbors = edge_neighbors(np.asarray(model.triangles))
    coeffs, verts, colors = face_inputs(model, batch)
    target = jnp.full((batch, SIZE, SIZE, 3), 0.5, jnp.float32)

    def primitives_group(args):
        v, c = args
        frags = rasterize(v, triangles, (SIZE, SIZE))
        rgb = interpolate(c, frags, triangles)
        mask = frags.mask[..., None].astype(jnp.float32)
        return antialias(jnp.concatenate([rgb, mask], -1), frags, v, triangles, neighbors)

    def primitives(v, c):
        return map_in_chunks(primitives_group, (v, c), batch, chunk)

    def primitives_loss(v, c):
        out = primitives(v, c)
        return jnp.sum(jnp.sqrt(jnp.sum((out[..., :3] - target) ** 2, -1) + 1e-8) * out[..., 3])

    camera = default_camera(SIZE)

    def face(c):
        return render_face(model, c, camera, neighbors=neighbors, frames_per_step=chunk)

    def face_loss(c):
        out = face(c)
        return jnp.sum(jnp.sqrt(jnp.sum((out.image - target) ** 2, -1) + 1e-8) * out.mask)

    fwd = jax.jit(primitives)
    bwd = jax.jit(jax.grad(primitives_loss, argnums=(0, 1)))
    face_fwd = jax.jit(face)
    face_bwd = jax.jit(jax.grad(face_loss))
    return {
        "primitives forward": best_ms_per_frame(fwd, (verts, colors), batch, repeats),
        "primitives forward+backward": best_ms_per_frame(bwd, (verts, colors), batch, repeats),
        "render_face forward": best_ms_per_frame(face_fwd, (coeffs,), batch, repeats),
        "render_face forward+backward": best_ms_per_frame(face_bwd, (coeffs,), batch, repeats),
    }, (verts, colors)


VERTEX_SHADER = """
#version 330
in vec3 in_pos;   // u, v in pixels, depth
in vec3 in_color;
out vec3 color;
uniform vec2 size;
void main() {
    // Pixels (v down) to clip space with a perspective w = depth, so depth tests and
    // interpolation are perspective-correct like the jnp renderer.
    float w = in_pos.z;
    vec2 ndc = vec2(2.0 * in_pos.x / size.x - 1.0, 1.0 - 2.0 * in_pos.y / size.y);
    gl_Position = vec4(ndc * w, (w - 2.0) / w * w, w);
    color = in_color;
}
"""
FRAGMENT_SHADER = """
#version 330
in vec3 color;
out vec4 frag;
void main() { frag = vec4(color, 1.0); }
"""


def opengl_timings(model, verts, colors, batch, repeats):
    """ms per frame for OpenGL (moderngl + EGL), or a string saying why it could not run."""
    try:
        import moderngl
        ctx = moderngl.create_standalone_context(backend="egl")
    except Exception as err:  # noqa: BLE001 - any failure means "not available here"
        return f"unavailable ({type(err).__name__}: {err}); pip install moderngl, needs EGL"
    program = ctx.program(vertex_shader=VERTEX_SHADER, fragment_shader=FRAGMENT_SHADER)
    program["size"].value = (SIZE, SIZE)
    fbo = ctx.simple_framebuffer((SIZE, SIZE), components=4)
    fbo.use()
    ctx.enable(moderngl.DEPTH_TEST)
    index = ctx.buffer(np.asarray(model.triangles, np.int32).tobytes())
    frames = []
    for b in range(batch):
        data = np.concatenate([np.asarray(verts[b]), np.asarray(colors[b])], -1)
        vbo = ctx.buffer(data.astype("f4").tobytes())
        frames.append(ctx.vertex_array(program, [(vbo, "3f 3f", "in_pos", "in_color")], index))

    def draw_all():
        out = []
        for vao in frames:
            fbo.clear(0.0, 0.0, 0.0, 0.0, depth=1.0)
            vao.render(moderngl.TRIANGLES)
            out.append(np.frombuffer(fbo.read(components=3), np.uint8))
        return out

    draw_all()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        draw_all()
        times.append(time.perf_counter() - start)
    info = ctx.info["GL_RENDERER"]
    image = draw_all()[0].reshape(SIZE, SIZE, 3)[::-1]
    return 1e3 * min(times) / batch, info, image


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 32])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--frames-per-step", type=int, nargs="+", default=[1, 4, 32],
                        help="frames rendered together per step of the loop over the batch")
    parser.add_argument("--no-opengl", action="store_true")
    args = parser.parse_args()
    model = load_face_model()
    print(f"model {model.name}: {model.n_vertices} vertices, {model.n_triangles} triangles; "
          f"image {SIZE}x{SIZE}; jax {jax.__version__} on {jax.devices()[0].platform}, "
          f"{os.cpu_count()} CPU cores; load average {os.getloadavg()[0]:.1f}")
    for batch in args.batches:
        best = None
        for chunk in sorted({min(c, batch) for c in args.frames_per_step}):
            timings, (verts, colors) = jax_timings(model, batch, args.repeats, chunk)
            for name, ms in timings.items():
                print(f"batch {batch:3d}  frames/step {chunk:3d}  {name:30s} {ms:8.2f} ms/frame")
            if best is None or timings["primitives forward"] < best["primitives forward"]:
                best = timings
        if not args.no_opengl:
            gl = opengl_timings(model, verts, colors, batch, args.repeats)
            if isinstance(gl, str):
                print(f"batch {batch:3d}  opengl: {gl}")
            else:
                ms, renderer, _ = gl
                ratio = best["primitives forward"] / ms
                print(f"batch {batch:3d}  opengl forward ({renderer}) {ms:8.2f} ms/frame; "
                      f"best jnp primitives forward / opengl = {ratio:.2f}")


if __name__ == "__main__":
    main()
