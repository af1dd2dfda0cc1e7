"""The shared Accelerator: bf16 only where the CPU computes it natively, accelerate's autocast really on
in the loss module's forward, and the FSDP plugin sharding the parts of a block that are called."""

import warnings
from types import MappingProxyType

import pytest
import torch
from accelerate.state import AcceleratorState

from m2dino.recipes.flags import build_parser, run_config_from_flags
from m2dino.recipes.run_config import RunConfig
from m2dino.training import TrainConfig, Trainer, accelerator_setup
from m2dino.training.accelerator_setup import cpu_supports_bf16, fsdp_plugin, make_accelerator, resolve_precision
from m2dino.training.train_config import TrainSettings

from .fake_data import fake_data
from .test_engine import tiny_model


def capabilities(monkeypatch, **found):
    monkeypatch.setattr(torch.cpu, "get_capabilities", lambda: MappingProxyType({"avx2": True, **found}))


@pytest.mark.parametrize("found, native", [({}, False), ({"avx512_bf16": True}, True), ({"amx_bf16": True}, True),
                                           ({"avx512_f": True, "amx_tile": True}, False), ({"bf16": True}, True)])
def test_native_bf16_is_read_from_the_cpu_capabilities(monkeypatch, found, native):
    capabilities(monkeypatch, **found)
    assert cpu_supports_bf16() is native


def test_without_torch_capabilities_the_kernel_flags_decide(monkeypatch, tmp_path):
    monkeypatch.delattr(torch.cpu, "get_capabilities")
    original = accelerator_setup.Path
    cpuinfo = tmp_path / "cpuinfo"
    monkeypatch.setattr(accelerator_setup, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else original(p))
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile\n")
    assert cpu_supports_bf16()
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n")
    assert not cpu_supports_bf16()


def on_cpu(monkeypatch):
    monkeypatch.setattr(accelerator_setup, "_runs_on_cpu", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


def test_bf16_on_a_cpu_without_it_warns_and_trains_in_fp32(monkeypatch):
    on_cpu(monkeypatch)
    capabilities(monkeypatch)
    with pytest.warns(UserWarning) as caught:
        assert resolve_precision("bf16") == "no"
    assert str(caught[0].message) == (
        "mixed_precision='bf16' asks for bf16 on a CPU without native bf16 (neither AMX-BF16 nor AVX512-BF16; torch "
        "would emulate it, slower than fp32): training in fp32")


def test_bf16_on_a_capable_cpu_is_kept_and_auto_stays_fp32_on_a_cpu(monkeypatch):
    on_cpu(monkeypatch)
    capabilities(monkeypatch, amx_bf16=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert resolve_precision("bf16") == "bf16"
        assert resolve_precision("auto") == "no"  # until an accuracy check switches it (see resolve_precision)
        assert resolve_precision("no") == "no"


@pytest.fixture
def fresh_accelerator_state():
    """accelerate keeps one precision per process: a bf16 Accelerator needs a reset, and so does the next test."""
    AcceleratorState._reset_state(reset_partial_state=True)
    yield
    AcceleratorState._reset_state(reset_partial_state=True)


@pytest.mark.parametrize("cpu", ["this", "capable"])
def test_bf16_autocasts_the_linear_layers_of_the_loss_modules_forward(monkeypatch, tmp_path, fresh_accelerator_state,
                                                                       cpu):
    if cpu == "this" and not cpu_supports_bf16():
        pytest.skip("this CPU has no native bf16 (AMX-BF16 or AVX512-BF16): bf16 would fall back to fp32")
    if cpu == "capable":  # accelerate's autocast is the same on any CPU; only its speed needs the hardware
        capabilities(monkeypatch, amx_bf16=True)
    model = tiny_model(["fetal_head"])
    dtypes = []
    model.backbone.blocks[0].attn.qkv.register_forward_hook(
        lambda module, args, out: dtypes.append(out.dtype) if module.training else None)
    train, val = fake_data(["fetal_head"])
    config = TrainConfig(output_dir=str(tmp_path), steps=2, batch_size=2, eval_every=1000, warmup_steps=1,
                         mixed_precision="bf16")
    Trainer(model, train, val, config, progress=False).train()
    assert dtypes == [torch.bfloat16, torch.bfloat16]
    assert model.backbone.blocks[0].attn.qkv.weight.dtype == torch.float32  # weights stay fp32


def test_the_fsdp_plugin_shards_each_blocks_attention_and_mlp_and_checkpoints_in_shards():
    plugin = fsdp_plugin(tiny_model())  # blocks 2 and 3 are task-MoE blocks
    assert plugin.fsdp_version == 2
    # not Mlp: the MoE's experts are Mlps too, whose weights the MoE reads without calling them (FSDP
    # gathers a shard only when its module is called); the dense blocks' Mlps stay in the root's shard
    assert plugin.transformer_cls_names_to_wrap == ["EvaAttention", "TaskMoE"]
    assert plugin.reshard_after_forward is True
    assert plugin.state_dict_type.name == "SHARDED_STATE_DICT"
    assert not plugin.cpu_ram_efficient_loading


def test_an_unknown_distributed_mode_is_refused_naming_the_choices(tmp_path):
    with pytest.raises(ValueError, match=r"distributed='zero3'; expected one of \('ddp', 'fsdp'\)"):
        make_accelerator("no", tmp_path, distributed="zero3")
    with pytest.raises(ValueError, match=r"distributed='zero3'; expected one of \('ddp', 'fsdp'\)"):
        TrainSettings(distributed="zero3")


def test_compile_and_distributed_come_from_flags_and_yaml():
    args = build_parser("unified").parse_args(["--compile", "--distributed", "fsdp", "--mixed-precision", "bf16"])
    train = run_config_from_flags("unified", args).train
    assert (train.compile, train.distributed, train.mixed_precision) == (True, "fsdp", "bf16")
    default = run_config_from_flags("unified", build_parser("unified").parse_args([])).train
    assert (default.compile, default.distributed) == (False, "ddp")
    config = RunConfig.from_dict({"train": {"compile": True, "distributed": "fsdp"}}, "run.yaml")
    assert (config.train.compile, config.train.distributed) == (True, "fsdp")
