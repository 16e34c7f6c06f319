<#
.SYNOPSIS
    Seed 003's example run on Windows: a chat server and three chat clients, each in its own
    console window.

.DESCRIPTION
    Builds the binaries (cargo build), starts chat-server on a free local port in one window,
    then opens the clients in their own windows as the run needs them and types each step
    into the right window (WScript.Shell SendKeys), pausing so you can watch:

        client 1: NAME A                  -> HELLO A
        client 2: NAME B                  -> HELLO B
        client 1: GETNAMES                -> USERS 2, A, B
        client 2: EXIT                    -> BYE (window closes)
        client 1: GETNAMES                -> USERS 1, A
        client 3: NAME B                  -> HELLO B
        client 1: GETNAMES                -> USERS 2, A, B
        client 1: MSG B HELLO             -> client 3 shows "A SENT HELLO"
        client 3: MSG A HELLO             -> client 1 shows "B SENT HELLO"
        client 3: EXIT, then client 1: EXIT

    If a window cannot be brought to the front (Windows Terminal as the default console
    host can prevent it), or with -Manual, the script tells you what to type in which window
    and waits for Enter instead. Press Enter at the end to stop the server.

.EXAMPLE
    powershell -ExecutionPolicy Bypass -File scripts\demo.ps1

.EXAMPLE
    powershell -ExecutionPolicy Bypass -File scripts\demo.ps1 -Manual
#>
param(
    # Type nothing: print each step and wait for you to type it yourself.
    [switch]$Manual
)

$ErrorActionPreference = 'Stop'
Set-Location (Join-Path $PSScriptRoot '..')

cargo build -q -p chat-server -p chat-client
if ($LASTEXITCODE -ne 0) { throw 'cargo build failed' }
$target = if ($env:CARGO_TARGET_DIR) { $env:CARGO_TARGET_DIR } else { 'target' }
$bin = (Resolve-Path (Join-Path $target 'debug')).Path
$serverExe = Join-Path $bin 'chat-server.exe'
$clientExe = Join-Path $bin 'chat-client.exe'

# A free port: bind port 0, note what the system chose, release it.
$probe = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
$probe.Start()
$port = ([System.Net.IPEndPoint]$probe.LocalEndpoint).Port
$probe.Stop()

$data = Join-Path ([System.IO.Path]::GetTempPath()) ('chat-demo-' + [guid]::NewGuid())
New-Item -ItemType Directory -Path $data | Out-Null

$server = Start-Process -FilePath $serverExe -PassThru `
    -ArgumentList @("$port", '--bind', '127.0.0.1', '--data-dir', "`"$data`"")
$clients = @{}
$shell = New-Object -ComObject WScript.Shell

function Wait-Server {
    $deadline = (Get-Date).AddSeconds(10)
    while ((Get-Date) -lt $deadline) {
        try {
            $probe = [System.Net.Sockets.TcpClient]::new('127.0.0.1', $port)
            $probe.Close()
            return
        } catch {
            Start-Sleep -Milliseconds 100
        }
    }
    throw "the server did not start listening on port $port"
}

function Start-Client([string]$label) {
    $proc = Start-Process -FilePath $clientExe -ArgumentList @('127.0.0.1', "$port") -PassThru
    $clients[$label] = $proc
    Start-Sleep -Seconds 2
}

# Types one line into a client's window (or asks you to, when that is not possible).
function Send-Line([string]$label, [string]$text) {
    $proc = $clients[$label]
    Write-Host ("{0,-9} {1}" -f "${label}:", $text)
    $typed = $false
    if (-not $Manual -and -not $proc.HasExited) {
        if ($shell.AppActivate($proc.Id)) {
            Start-Sleep -Milliseconds 400
            # SendKeys gives + ^ % ~ ( ) { } [ ] special meanings: brace them.
            $escaped = [regex]::Replace($text, '[+^%~(){}\[\]]', '{$0}')
            $shell.SendKeys($escaped + '{ENTER}')
            $typed = $true
        }
    }
    if (-not $typed) {
        Read-Host "  type that in the '$label' window, then press Enter here" | Out-Null
    }
    Start-Sleep -Seconds 2
}

try {
    Wait-Server
    Write-Host "Server on 127.0.0.1:$port (data in $data). Replaying seed 003's example run."
    Start-Client 'client 1'
    Send-Line 'client 1' 'NAME A'
    Start-Client 'client 2'
    Send-Line 'client 2' 'NAME B'
    Send-Line 'client 1' 'GETNAMES'
    Send-Line 'client 2' 'EXIT'
    Send-Line 'client 1' 'GETNAMES'
    Start-Client 'client 3'
    Send-Line 'client 3' 'NAME B'
    Send-Line 'client 1' 'GETNAMES'
    Send-Line 'client 1' 'MSG B HELLO'
    Send-Line 'client 3' 'MSG A HELLO'
    Send-Line 'client 3' 'EXIT'
    Send-Line 'client 1' 'EXIT'
    Read-Host 'The run is over. Press Enter to stop the server' | Out-Null
} finally {
    foreach ($proc in @($clients.Values) + $server) {
        if ($proc -and -not $proc.HasExited) { Stop-Process -Id $proc.Id -Force -ErrorAction SilentlyContinue }
    }
    Remove-Item -Recurse -Force $data -ErrorAction SilentlyContinue
}
