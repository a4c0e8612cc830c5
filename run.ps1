#!/usr/bin/env pwsh
# DiffusionCircuits for PowerShell users: forwards every argument to the `diffcircuits` CLI.
#   ./run.ps1 inspect models/reference-ddpm-32.onnx
#   ./run.ps1 report --real ../shared/data/celeba --heldout models/heldout-celeba.txt
$ErrorActionPreference = 'Stop'
$project = Join-Path $PSScriptRoot 'src/DiffusionCircuits.Cli'
dotnet run --project $project -c Release -- @args
exit $LASTEXITCODE
