"""What SXML accepts: elements, where they may appear, their attributes and value types.

Built from the Craftsman 1.0 XSD and the later, larger schema (see docs/sxml.md). The
parser checks documents against these tables; the renderer reads the enums.
"""

from __future__ import annotations

EFFECT_TYPES = (
    "none",
    "kenburns",
    "flower",
    "panel",
    "explode",
    "rotator",
    "diving",
    "sliding",
    "square",
    "rectangles",
    "slice",
)
SINGLE_MEDIA_EFFECTS = frozenset({"none", "kenburns", "flower", "panel", "explode", "slice", "rectangles"})
MAX_EFFECT_MEDIA = 100
TRANSITION_TYPES = (
    "crossfade",
    "waterdrop",
    "circle",
    "radial",
    "swirl",
    "strip",
    "scan",
    "scans",
    "move",
    "over",
    "under",
    "cube",
    "spiral",
    "dualmove",
    "custom",
)
DEFAULT_TRANSITION_TYPE = "crossfade"
DEFAULT_TRANSITION_DURATION = 1.0
TEXT_TYPES = ("legend", "zone", "advanced")
DEFAULT_TEXT_TYPE = "zone"
ANIMATOR_TYPES = ("slide", "slide-in", "slide-out", "rot-in", "rot-out", "grow", "custom")
FILTER_TYPES = (
    # Craftsman 1.0
    "colormap",
    "distancemap",
    "distancecolor",
    "hblur",
    "vblur",
    "blur",
    "alpha",
    "flick",
    "glow",
    "grow",
    "frame",
    "borderBlur",
    "tv",
    "flashback",
    "noise",
    "cornerCut",
    "fixedAdapter",
    "panoramicAdapter",
    "zoomAdapter",
    "kenburnsAdapter",
    "identity",
    "combine",
    "mask",
    "key",
    "makeTransparent",
    "subRender",
    "dof",
    "antialias",
    "quad",
    # the later schema
    "custom",
    "tint",
    "threetint",
    "threshold",
    "bleach",
    "displacement",
    "motionInterpolate",
    "exposure",
    "hgaussianBlur",
    "vgaussianBlur",
    "gaussianBlur",
    "directionalBlur",
    "maskedBlur",
    "bilateralBlur",
    "fitAdapter",
    "alphamask",
    "alphainvmask",
    "lumamask",
    "lumainvmask",
    "gradient",
    "radialGradient",
)
ADAPTERS = ("none", "panoramicAdapter", "zoomAdapter", "fixedAdapter", "kenburnsAdapter")
DIRECTIONS = ("positive", "negative", "left", "right", "up", "down", "static")

ATOMS = frozenset({"effect", "text", "audio", "overlay"})
MODIFIERS = frozenset({"filter", "animator"})
# Which children each element may hold (widget is desugared into a sequence, so it may
# stand wherever a sequence may).
CHILDREN: dict[str, frozenset[str]] = {
    "movie": frozenset({"head", "body"}),
    "head": frozenset({"filtercode"}),
    "body": ATOMS | MODIFIERS | {"sequence", "stack", "transition", "widget"},
    "sequence": ATOMS | MODIFIERS | {"sequence", "stack", "transition", "widget"},
    "stack": ATOMS | MODIFIERS | {"sequence", "stack", "camera", "widget"},
    "effect": ATOMS | MODIFIERS | {"image", "video"},
    "overlay": ATOMS | MODIFIERS | {"image", "video"},
    "filter": ATOMS | MODIFIERS | {"image", "video"},
    "text": MODIFIERS,
    "image": frozenset({"filter"}),
    "video": frozenset({"filter"}),
    "animator": frozenset({"key"}),
    "camera": frozenset({"animator"}),
    "audio": frozenset(),
    "key": frozenset(),
    "transition": frozenset({"widget"}),  # only for type="custom"
    "filtercode": frozenset(),
}
KNOWN_TAGS = frozenset(CHILDREN) | {"widget", "track", "style", "sphere"}
# Elements whose character content is meaningful; elsewhere text is ignored.
TEXT_CONTENT = frozenset({"text", "audio", "filtercode"})
# Elements that accept any attribute: their parameters are type-specific and open-ended.
OPEN_ATTRIBUTES = frozenset({"filter", "key", "filtercode", "widget"})

TIME = {
    "duration": "duration",
    "margin-start": "seconds",
    "margin-end": "seconds",
    "margin-both": "seconds",
    "start": "seconds",
    "name": "text",
}
PLACE = {name: "box" for name in ("top", "bottom", "left", "right", "width", "height")}
DUCKING = {"duck-others": "number", "duck-threshold": "number", "duck-margin": "seconds", "duck-fade": "seconds"}

ATTRIBUTES: dict[str, dict[str, object]] = {
    "movie": {"service": ("craftsman-1.0",)},
    "head": {},
    "body": dict(TIME),
    "sequence": dict(TIME),
    "stack": {**TIME, "screenWidth": "number", "screenHeight": "number", "static": "flag"},
    "effect": {
        **TIME,
        "type": EFFECT_TYPES,
        "timeOffset": "number",
        "depthEnable": "flag",
        "direction": "direction",
        "adapter": ADAPTERS,
        "filterType": ("grow",),
        "cameramove": ("left", "right", "up", "down"),
        "transWidth": "number",
        "width": "number",
        "color": "color",
    },
    "text": {
        **TIME,
        **PLACE,
        "type": TEXT_TYPES,
        "align": "text",
        "direction": DIRECTIONS[2:],
        "fontsize": "number",
        "fontname": "text",
        "fontcolor": "color",
        "backgroundcolor": "color",
        "speed": "number",
        "vector": "flag",
        "reference": "text",
        "wrap": "flag",
        "interlign": "number",
        "depthEnable": "flag",
        "face": "text",
        "weight": "text",
        "style": "text",
        "stretch": "text",
    },
    "overlay": {**TIME, **PLACE, "depthEnable": "flag"},
    "audio": {
        **TIME,
        **DUCKING,
        "filename": "text",
        "fadein": "seconds",
        "fadeout": "seconds",
        "skip": "seconds",
        "volume": "number",
        "loop": "flag",
        "voice": "text",
        "speed": "positive",
    },
    "image": {
        "filename": "text",
        "color": "color",
        "width": "number",
        "height": "number",
        "duration": "duration",
        "type": ("map",),
        "center": "text",
        "zoom": "number",
        "markers": "text",
        "size": "text",
        "maptype": ("map", "hybrid", "satellite"),
        "mapkey": "text",
        "alt_filename": "text",
        "nativeHeightRatio": "number",
        "name": "text",
    },
    "video": {
        **DUCKING,
        "filename": "text",
        "skip": "seconds",
        "audio": "flag",
        "volume": "number",
        "duration": "duration",
        "margin-start": "seconds",
        "speed": "positive",
        "audiospeed": "positive",
        "name": "text",
    },
    "animator": {
        **TIME,
        "type": ANIMATOR_TYPES,
        "direction": ("left", "right", "up", "down"),
        "angle": "number",
        "growStart": "number",
        "growEnd": "number",
        "mode": ("linear", "quadratic"),
    },
    "camera": {**TIME, "relative": "flag"},
    "transition": {
        "type": TRANSITION_TYPES,
        "duration": "seconds",
        "direction": "direction",
        "rotCenter": ("middle", "left", "right", "top", "bottom"),
        "angle": "number",
        "directions": "text",
        "rotCenters": "text",
        "angles": "couple",
        "depthEnable": "flag",
        "drawOrder": ("normal", "inverted"),
        "name": "text",
    },
    # open elements: only the typed attributes they are known to carry are checked
    "filter": {
        **TIME,
        "type": FILTER_TYPES,
        "color": "color",
        "opaqueColor": "color",
        "transparentColor": "color",
        "whiteColor": "color",
        "blackColor": "color",
        "mediumColor": "color",
        "width": "number",
        "transWidth": "number",
        "diameter": "number",
        "alphaStart": "number",
        "alphaEnd": "number",
        "distanceWidth": "number",
    },
    "key": {"time": "number", "pos": "triplet", "scale": "triplet"},
    "filtercode": {"shaderLanguageType": ("glsl",)},
    "widget": {},
}
REQUIRED = {"effect": "type", "animator": "type", "filter": "type", "widget": "type"}
