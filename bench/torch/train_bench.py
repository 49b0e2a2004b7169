"""PyTorch CPU side of `cohort bench train`: the same architectures, losses and optimizer as the Cohort model zoo.

Protocol (one JSON object per line on stdin/stdout):
  {"cmd": "setup", "name": ..., "spec": {...}, "batch": B, "input": [C, ...], "threads": T}  -> {"ok": true, "params": n}
  {"cmd": "run", "steps": S}                                                          -> {"seconds": s}
Run with Debian's /usr/bin/python3 (python3-torch).
"""
import json
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_nd(nd):
    return nn.Conv2d if nd == 2 else nn.Conv3d


def norm_layer(kind, c, nd, groups=4):
    if kind == "instance":
        return (nn.InstanceNorm2d if nd == 2 else nn.InstanceNorm3d)(c, affine=True)
    if kind == "group":
        return nn.GroupNorm(min(groups, c), c)
    return nn.Identity()


class MLP(nn.Module):
    def __init__(self, spec, inp):
        super().__init__()
        layers, d = [], inp[0]
        for h in spec.get("hidden", [64]):
            layers += [nn.Linear(d, h), nn.ReLU()]
            d = h
        layers.append(nn.Linear(d, spec["classes"]))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class CNN(nn.Module):
    def __init__(self, spec, inp):
        super().__init__()
        nd = len(inp) - 1
        layers, c = [], inp[0]
        pool = (nn.MaxPool2d if nd == 2 else nn.MaxPool3d) if spec.get("pool", "max") == "max" else (nn.AvgPool2d if nd == 2 else nn.AvgPool3d)
        k = spec.get("kernel", 3)
        for out in spec.get("channels", [16, 32]):
            # the zoo's order (src/engine/zoo/index.ts cnnFeatures): max pool before ReLU (equal values, ReLU on 1/4 of them),
            # average pool after it; both sides of the comparison do the same work
            act = [pool(2), nn.ReLU()] if spec.get("pool", "max") == "max" else [nn.ReLU(), pool(2)]
            layers += [conv_nd(nd)(c, out, k, padding=k // 2), norm_layer(spec.get("norm", "none"), out, nd), *act]
            c = out
        self.features = nn.Sequential(*layers)
        head, d = [], c
        for h in spec.get("hidden", []):
            head += [nn.Linear(d, h), nn.ReLU()]
            d = h
        head.append(nn.Linear(d, spec["classes"]))
        self.head = nn.Sequential(*head)

    def forward(self, x):
        h = self.features(x)
        return self.head(h.mean(dim=tuple(range(2, h.dim()))))


class Double(nn.Module):
    def __init__(self, cin, out, nd, norm, groups):
        super().__init__()
        C = conv_nd(nd)
        self.net = nn.Sequential(C(cin, out, 3, padding=1), norm_layer(norm, out, nd, groups), nn.ReLU(),
                                 C(out, out, 3, padding=1), norm_layer(norm, out, nd, groups), nn.ReLU())

    def forward(self, x):
        return self.net(x)


class UNet(nn.Module):
    def __init__(self, spec, inp):
        super().__init__()
        nd = len(inp) - 1
        self.nd = nd
        base, depth = spec.get("base", 8), spec.get("depth", 2)
        norm, groups = spec.get("norm", "instance"), spec.get("groups", 4)
        self.enc, c = nn.ModuleList(), inp[0]
        for level in range(depth):
            self.enc.append(Double(c, base * 2 ** level, nd, norm, groups))
            c = base * 2 ** level
        self.mid = Double(c, base * 2 ** depth, nd, norm, groups)
        c = base * 2 ** depth
        T = nn.ConvTranspose2d if nd == 2 else nn.ConvTranspose3d
        self.up, self.dec = nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(depth)):
            out = base * 2 ** level
            self.up.append(T(c, out, 2, stride=2))
            self.dec.append(Double(2 * out, out, nd, norm, groups))
            c = out
        self.head = conv_nd(nd)(c, spec.get("classes", 1), 1)

    def forward(self, x):
        pool = F.max_pool2d if self.nd == 2 else F.max_pool3d
        skips = []
        for block in self.enc:
            x = block(x)
            skips.append(x)
            x = pool(x, 2)
        x = self.mid(x)
        for up, dec, skip in zip(self.up, self.dec, reversed(skips)):
            x = dec(torch.cat([skip, up(x)], 1))
        return self.head(x)


def build(spec, inp):
    t = spec["type"]
    if t == "mlp":
        return MLP(spec, inp)
    if t in ("cnn2d", "cnn3d"):
        return CNN(spec, inp)
    if t in ("unet2d", "unet3d"):
        return UNet(spec, inp)
    raise ValueError("unsupported model type " + t)


def dice_bce(z, y):
    p = torch.sigmoid(z)
    axes = tuple(range(2, z.dim()))
    dice = (2 * (p * y).sum(axes) + 1) / (p.sum(axes) + y.sum(axes) + 1)
    return (1 - dice.mean()) + F.binary_cross_entropy_with_logits(z, y)


class Bench:
    def setup(self, msg):
        torch.set_num_threads(msg["threads"])
        torch.manual_seed(1)
        spec, B, inp = msg["spec"], msg["batch"], msg["input"]
        self.model = build(spec, inp)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.x = torch.randn(B, *inp)
        if spec["type"].startswith("unet"):
            self.y = (torch.rand(B, spec.get("classes", 1), *inp[1:]) > 0.7).float()
            self.loss = dice_bce
        else:
            self.y = torch.randint(0, spec["classes"], (B,))
            self.loss = F.cross_entropy
        self.run({"steps": 2})  # warm-up (allocator, first-call overheads), as the ORT side warms its session
        return {"ok": True, "params": sum(p.numel() for p in self.model.parameters())}

    def run(self, msg):
        t0 = time.perf_counter()
        for _ in range(msg["steps"]):
            self.opt.zero_grad(set_to_none=True)
            loss = self.loss(self.model(self.x), self.y)
            loss.backward()
            self.opt.step()
        return {"seconds": time.perf_counter() - t0}


def main():
    bench = Bench()
    print(json.dumps({"ready": True, "torch": torch.__version__}), flush=True)
    for line in sys.stdin:
        msg = json.loads(line)
        try:
            reply = bench.setup(msg) if msg["cmd"] == "setup" else bench.run(msg)
        except Exception as e:  # report, keep serving
            reply = {"error": repr(e)}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__":
    main()
