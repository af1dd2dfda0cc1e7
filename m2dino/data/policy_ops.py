"""The operations of the augmentation policies (`m2dino.data.augment_policies`), batched in torch on
the training device: each takes a batch and one parameter per sample, and a sample whose parameter
is its identity value (`augment_policies.POLICY_IDENTITY`) comes out exactly as it went in.

Black stays black: level 0 is the letterbox padding or the area outside the scan, not tissue. The
level maps keep it at 0 and leave it out of the image statistics (mean, range, histogram); the
spatial operations (sharpness, speckle reduction, haze) change only the scan region, the non-black
pixels with their small black holes closed (`scan_region`); attenuation and shadows multiply.
Coordinates of the ultrasound operations are fractions of the image, the probe at the top centre.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Drawn = dict[str, torch.Tensor]


# ------------------------------------------------------------------------------ level maps
def whole_levels(images: torch.Tensor) -> torch.Tensor:
    """int64: the uint8 level of each float value in [0, 255], truncated as PIL's bilinear warp
    truncates; + 1e-3 because a warp landing on whole pixels gives 199.99998 for 200 in float32."""
    return (images + 1e-3).long()


def level_histograms(images: torch.Tensor) -> torch.Tensor:
    """float64 B×256: how many pixels of each sample sit at each uint8 level (`whole_levels`; the
    channels' mean level for colour images)."""
    levels = whole_levels(images.detach()).clamp_(0, 255)
    if levels.shape[1] > 1:
        levels = levels.to(torch.float32).mean(dim=1, keepdim=True).to(torch.int64)
    counts = torch.zeros(len(images), 256, dtype=torch.float64, device=images.device)
    counts.scatter_add_(1, levels.flatten(1), torch.ones(1, dtype=torch.float64, device=images.device)
                        .expand(len(images), levels[0].numel()))
    return counts.cpu()


def level_maps(drawn: Drawn, histograms: torch.Tensor | None) -> torch.Tensor | None:
    """float64 B×256: each uint8 level's value in [0, 255] after the TrivialAugment level operations
    the sample drew (brightness, contrast, posterize, solarize, autocontrast, equalize, as PIL's
    ImageEnhance/ImageOps define them, statistics over the non-black pixels); None when no sample
    drew one. A sample draws at most one of them, so their order here does not matter."""
    active = {key: drawn[key] != identity for key, identity in (
        ("brightness", 1.0), ("contrast", 1.0), ("posterize", 8.0), ("solarize", 256.0), ("autocontrast", 0.0),
        ("equalize", 0.0))}
    if not any(bool(a.any()) for a in active.values()):
        return None
    batch = len(drawn["brightness"])
    levels = torch.arange(256, dtype=torch.float64).expand(batch, 256)
    out = levels * drawn["brightness"][:, None]
    if histograms is not None:
        tissue = histograms[:, 1:]  # level 0 is background
        count = tissue.sum(dim=1, keepdim=True)
        present = tissue > 0
        mean = (tissue * levels[:, 1:]).sum(dim=1, keepdim=True) / count.clamp(min=1)
        out = torch.where(active["contrast"][:, None], mean + drawn["contrast"][:, None] * (out - mean), out)
        low = torch.where(present, levels[:, 1:], 256.0).amin(dim=1, keepdim=True)
        high = torch.where(present, levels[:, 1:], 0.0).amax(dim=1, keepdim=True)
        stretch = active["autocontrast"][:, None] & (high > low)
        out = torch.where(stretch, (out - low) * 255.0 / (high - low).clamp(min=1), out)
        cumulative = torch.cat([torch.zeros(batch, 1, dtype=torch.float64), tissue.cumsum(dim=1)], dim=1)
        equalised = 255.0 * cumulative / count.clamp(min=1)  # 255 × the fraction of tissue at or below
        out = torch.where(active["equalize"][:, None] & (count > 0), equalised, out)
    step = torch.exp2(8.0 - drawn["posterize"])[:, None]
    out = torch.where(active["posterize"][:, None], torch.floor(out / step) * step, out)
    threshold = drawn["solarize"][:, None]
    out = torch.where(active["solarize"][:, None] & (out >= threshold), 255.0 - out, out)
    out = out.clamp(0, 255)
    out[:, 0] = 0.0
    return out


def needs_histograms(drawn: Drawn) -> bool:
    """Whether any sample drew an operation that reads its image's level statistics."""
    return bool((drawn["contrast"] != 1).any() | (drawn["autocontrast"] != 0).any() | (drawn["equalize"] != 0).any())


# ------------------------------------------------------------------------------ spatial ops
def scan_region(images: torch.Tensor, rows: torch.Tensor | None = None, fraction: float = 1 / 8) -> torch.Tensor:
    """bool B×1×H×W: the non-black pixels, closed by a square of ``fraction`` of the shorter side
    (fills anechoic holes, e.g. fluid, up to that size; the black outside a sector stays out). Only
    the samples in ``rows`` (indices; default all) are computed, the others are all False."""
    size = max(3, int(min(images.shape[-2:]) * fraction) // 2 * 2 + 1)
    chosen = images if rows is None else images[rows]

    def grown(mask: torch.Tensor) -> torch.Tensor:  # dilation: a box sum > 0, from cumulative sums (O(1) a pixel)
        half = size // 2
        summed = F.pad(mask, (half + 1, half)).cumsum(-1)
        mask = summed[..., size:] - summed[..., :-size]
        summed = F.pad(mask, (0, 0, half + 1, half)).cumsum(-2)
        return (summed[..., size:, :] - summed[..., :-size, :]) > 0.5  # sums of 0/1: whole numbers

    dilated = grown((chosen.amax(dim=1, keepdim=True) > 0).to(images.dtype))
    closed = ~grown((~dilated).to(images.dtype))  # erosion: the outside of the image counts as scan
    if rows is None:
        return closed
    scan = torch.zeros(len(images), *closed.shape[1:], dtype=torch.bool, device=images.device)
    scan[rows] = closed
    return scan


def _rows(images: torch.Tensor, active: torch.Tensor) -> torch.Tensor:
    return torch.nonzero(active, as_tuple=True)[0].to(images.device)


def sharpen(images: torch.Tensor, factors: torch.Tensor, scan: torch.Tensor) -> torch.Tensor:
    """PIL's ImageEnhance.Sharpness: blend with the image smoothed by [[1,1,1],[1,5,1],[1,1,1]]/13,
    ``factors`` 1 identity, 0 the smoothed image, >1 sharper; the 1-px border is kept, as PIL does."""
    rows = _rows(images, factors != 1)
    if len(rows) == 0:
        return images
    chosen = images[rows]
    batch, channels, height, width = chosen.shape
    kernel = torch.ones(3, 3, dtype=images.dtype, device=images.device)
    kernel[1, 1] = 5
    smooth = F.conv2d(chosen.reshape(-1, 1, height, width), (kernel / 13)[None, None]).view(
        batch, channels, height - 2, width - 2)
    inner = chosen[..., 1:-1, 1:-1]
    factor = factors[rows.cpu()].to(images.device, images.dtype).view(-1, 1, 1, 1)
    sharpened = chosen.clone()
    sharpened[..., 1:-1, 1:-1] = (smooth + factor * (inner - smooth)).clamp(0, 1)
    images = images.clone()
    images[rows] = torch.where(scan[rows], sharpened, chosen)
    return images


def _probe_distance(size: tuple[int, int], device: torch.device) -> torch.Tensor:
    """H×W: each pixel centre's distance from the probe (the top centre), in image heights and widths."""
    height, width = size
    ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
    xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width
    return torch.sqrt((xs[None, :] - 0.5) ** 2 + ys[:, None] ** 2)


def attenuation_and_shadow(drawn: Drawn, size: tuple[int, int], device: torch.device) -> torch.Tensor | None:
    """B×1×H×W factors: depth attenuation exp(-rate · distance from the probe) (Østvik et al. 2021)
    times a Gaussian shadow 1 - depth · exp(-(dx²/2sx² + dy²/2sy²)) (Smistad et al. 2018), both as
    fractions of the image; None when no sample drew either."""
    rate, depth = drawn["attenuation"], drawn["shadow"]
    if not bool((rate > 0).any() | (depth > 0).any()):
        return None
    height, width = size
    distance = _probe_distance(size, device)
    factors = torch.exp(-rate.to(device, torch.float32).view(-1, 1, 1) * distance)
    if bool((depth > 0).any()):
        ys = (torch.arange(height, device=device, dtype=torch.float32) + 0.5) / height
        xs = (torch.arange(width, device=device, dtype=torch.float32) + 0.5) / width

        def column(key: str) -> torch.Tensor:
            return drawn[key].to(device, torch.float32).view(-1, 1, 1)

        exponent = ((xs.view(1, 1, -1) - column("shadow_x")) ** 2 / (2 * column("shadow_sx") ** 2)
                    + (ys.view(1, -1, 1) - column("shadow_y")) ** 2 / (2 * column("shadow_sy") ** 2))
        factors = factors * (1 - column("shadow") * torch.exp(-exponent))
    return factors[:, None]


def haze(images: torch.Tensor, drawn: Drawn, scan: torch.Tensor) -> torch.Tensor:
    """Adds amplitude · U(0, 1) · exp(-(r - radius)² / 2sigma²) in the scan region, r the distance from
    the probe: a band of static at a fixed depth (Østvik et al. 2021); each sample's noise from a
    generator seeded by its ``haze_seed``."""
    rows = _rows(images, drawn["haze"] > 0)
    if len(rows) == 0:
        return images
    size, device = images.shape[-2:], images.device
    distance = _probe_distance(tuple(size), device)
    images = images.clone()
    for row in rows.tolist():
        generator = torch.Generator(device=device)
        generator.manual_seed(int(drawn["haze_seed"][row]))
        noise = torch.rand(size, generator=generator, device=device, dtype=images.dtype)
        sigma = max(float(drawn["haze_sigma"][row]), 1e-3)
        band = torch.exp(-((distance - float(drawn["haze_radius"][row])) ** 2) / (2 * sigma**2))
        added = float(drawn["haze"][row]) * noise * band * scan[row, 0]
        images[row] = (images[row] + added).clamp(0, 1)
    return images


def bilateral(images: torch.Tensor, spatial: torch.Tensor, color: torch.Tensor, scan: torch.Tensor,
              radius: int = 2) -> torch.Tensor:
    """Speckle reduction: a bilateral filter over a (2·radius+1)² window (usaugment's 5×5), weights
    exp(-d²/2·spatial²) · exp(-(v - centre)²/2·color²) with intensities in [0, 1], edges reflected,
    each channel on its own; a sample with either sigma 0 is left as it is."""
    rows = _rows(images, (spatial > 0) & (color > 0))
    if len(rows) == 0:
        return images
    chosen = images[rows]
    height, width = chosen.shape[-2:]
    padded = F.pad(chosen, (radius,) * 4, mode="reflect")
    cpu_rows = rows.cpu()
    spatial_scale = (0.5 / spatial[cpu_rows] ** 2).to(images.device, images.dtype).view(-1, 1, 1, 1)
    color_scale = (0.5 / color[cpu_rows] ** 2).to(images.device, images.dtype).view(-1, 1, 1, 1)
    total, weight_sum = torch.zeros_like(chosen), torch.zeros_like(chosen)
    for dy in range(2 * radius + 1):  # one offset at a time: no (2r+1)² copy of the batch
        for dx in range(2 * radius + 1):
            neighbour = padded[..., dy:dy + height, dx:dx + width]
            weight = (neighbour - chosen).square_().mul_(color_scale)
            weight = weight.add_(spatial_scale * float((dy - radius) ** 2 + (dx - radius) ** 2)).neg_().exp_()
            total.addcmul_(weight, neighbour)
            weight_sum.add_(weight)
    images = images.clone()
    images[rows] = torch.where(scan[rows], total / weight_sum, chosen)
    return images


def spatial_rows(drawn: Drawn) -> torch.Tensor:
    """The samples (indices) that drew an operation that needs the scan region."""
    active = ((drawn["sharpness"] != 1) | (drawn["haze"] > 0)
              | ((drawn["bilateral_spatial"] > 0) & (drawn["bilateral_color"] > 0)))
    return torch.nonzero(active, as_tuple=True)[0]
