"""Output collection order and format conversion, on real image files."""

from __future__ import annotations

import pytest
from PIL import Image

from comfyui_wrapper.errors import OutputFormatError
from comfyui_wrapper.outputs import check_format, collect, deliver


def make_png(path, color=(255, 0, 0, 255), mode="RGBA"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, (4, 4), color[: len(mode)]).save(path)
    return path


def test_collect_orders_by_node_then_write_order_then_unreported(tmp_path):
    out, temp = tmp_path / "out", tmp_path / "temp"
    for name in ("b.png", "a.png", "c.png", "sub/d.png", "stray.txt"):
        make_png(out / name) if name.endswith(".png") else (out / name).write_text("x")
    make_png(temp / "t.png")
    outputs = {
        "12": {"images": [{"filename": "c.png", "subfolder": "", "type": "output"}]},
        "9": {"images": [{"filename": "b.png", "subfolder": "", "type": "output"},
                         {"filename": "a.png", "subfolder": "", "type": "output"}],
              "gifs": [{"filename": "d.png", "subfolder": "sub", "type": "output"}]},
        "10": {"images": [{"filename": "t.png", "subfolder": "", "type": "temp"}]},
        "11": {"images": [{"filename": "../../etc/passwd", "subfolder": "", "type": "output"}]},
    }
    names = [p.path.name for p in collect(outputs, out, temp, include_temp=False)]
    assert names == ["b.png", "a.png", "d.png", "c.png", "stray.txt"]
    with_temp = [p.path.name for p in collect(outputs, out, temp, include_temp=True)]
    assert with_temp == ["b.png", "a.png", "d.png", "t.png", "c.png", "stray.txt"]


def test_rgba_to_jpg_flattens_onto_white(tmp_path):
    source = make_png(tmp_path / "out" / "x.png", color=(0, 0, 0, 0))
    [produced] = collect({"1": {"images": [{"filename": "x.png", "type": "output"}]}}, tmp_path / "out", tmp_path / "t", include_temp=False)
    [path] = deliver([produced], tmp_path / "dest", "jpg", 80)
    with Image.open(path) as image:
        assert image.format == "JPEG" and image.getpixel((0, 0)) == (255, 255, 255)
    assert not source.exists()


def test_same_names_from_two_folders_do_not_collide(tmp_path):
    make_png(tmp_path / "out" / "x.png")
    make_png(tmp_path / "out" / "sub" / "x.png", color=(0, 255, 0, 255))
    produced = collect({"1": {"images": [{"filename": "x.png", "type": "output"},
                                          {"filename": "x.png", "subfolder": "sub", "type": "output"}]}},
                       tmp_path / "out", tmp_path / "t", include_temp=False)
    paths = deliver(produced, tmp_path / "dest", "webp", 90)
    assert [p.name for p in paths] == ["x.webp", "x_1.webp"]


def test_animated_and_non_images_pass_through(tmp_path):
    frames = [Image.new("RGB", (4, 4), c) for c in ((255, 0, 0), (0, 255, 0))]
    gif = tmp_path / "out" / "anim.webp"
    gif.parent.mkdir(parents=True)
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100)
    (tmp_path / "out" / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    produced = collect({"1": {"images": [{"filename": "anim.webp", "type": "output"}],
                              "gifs": [{"filename": "clip.mp4", "type": "output"}]}},
                       tmp_path / "out", tmp_path / "t", include_temp=False)
    paths = deliver(produced, tmp_path / "dest", "png", 90)
    assert [p.name for p in paths] == ["anim.webp", "clip.mp4"]


@pytest.mark.parametrize("fmt,quality", [("gif", 90), ("png", 101), ("jpg", -1), ("webp", True)])
def test_bad_format_or_quality(fmt, quality):
    with pytest.raises(OutputFormatError):
        check_format(fmt, quality)


def test_an_image_too_wide_for_webp_is_returned_unchanged(tmp_path):
    """webp stops at 16383 px a side; a wide result must not be lost to Pillow's ValueError."""
    out = tmp_path / "out"
    out.mkdir()
    Image.new("RGB", (16400, 8), (0, 0, 255)).save(out / "panorama.png")
    make_png(out / "small.png")
    produced = collect({"1": {"images": [{"filename": "panorama.png", "type": "output"},
                                         {"filename": "small.png", "type": "output"}]}},
                       out, tmp_path / "t", include_temp=False)
    paths = deliver(produced, tmp_path / "dest", "webp", 90)
    assert [p.name for p in paths] == ["panorama.png", "small.webp"]
    assert Image.open(paths[0]).size == (16400, 8)
    assert sorted(p.name for p in (tmp_path / "dest").iterdir()) == ["panorama.png", "small.webp"]


def test_a_link_in_output_to_a_file_elsewhere_is_not_collected(tmp_path):
    """An unreported link must not make deliver() move its target (a weight, a system file) away."""
    out, elsewhere = tmp_path / "out", tmp_path / "weights"
    make_png(out / "real.png")
    make_png(elsewhere / "model.png")
    (out / "link.png").symlink_to(elsewhere / "model.png")
    produced = collect({}, out, tmp_path / "t", include_temp=False)
    assert [p.path.name for p in produced] == ["real.png"]
    deliver(produced, tmp_path / "dest", "png", 90)
    assert (elsewhere / "model.png").is_file()


def test_pngs_are_rewritten_with_only_the_given_workflow(tmp_path):
    from PIL import PngImagePlugin

    from comfyui_wrapper.outputs import ProducedFile

    source = tmp_path / "out" / "a.png"
    source.parent.mkdir()
    info = PngImagePlugin.PngInfo()
    info.add_text("prompt", '{"1": {"inputs": {"cw_run": "secret-token", "path": "/src/runtime/input/x.png"}}}')
    info.add_text("parameters", "a pack's own chunk")
    Image.new("RGB", (4, 4), (1, 2, 3)).save(source, pnginfo=info)
    workflow = {"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}}}
    [png] = deliver([ProducedFile(source, "1", "output")], tmp_path / "res", "png", 90, workflow=workflow,
                    secrets=["secret-token"])
    with Image.open(png) as image:
        assert dict(image.text) == {"prompt": '{"1": {"class_type": "LoadImage", "inputs": {"image": "x.png"}}}'}
        assert image.getpixel((0, 0)) == (1, 2, 3)
    make_png(source)
    [bare] = deliver([ProducedFile(source, "1", "output")], tmp_path / "res2", "png", 90, workflow=None)
    with Image.open(bare) as image:
        assert dict(image.text) == {}


def test_a_passed_through_file_holding_a_run_token_is_scrubbed(tmp_path):
    from comfyui_wrapper.outputs import ProducedFile

    source = tmp_path / "out" / "a.jpg"
    source.parent.mkdir()
    exif = Image.Exif()
    exif[0x0110] = "prompt:{\"cw_run\": \"secret-token\"}"
    Image.new("RGB", (4, 4), (200, 0, 0)).save(source, "JPEG", exif=exif)
    [jpg] = deliver([ProducedFile(source, "1", "output")], tmp_path / "res", "jpg", 90, secrets=["secret-token"])
    assert b"secret-token" not in jpg.read_bytes()
    with Image.open(jpg) as image:
        assert image.size == (4, 4)
