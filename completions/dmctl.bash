# bash completion for dmctl (and for dmsetup, when dmctl is installed as dmsetup)
# shellcheck shell=bash

_dmctl_commands="help create remove remove_all suspend resume load clear reload wipe_table
rename measure message ls info deps stats status table wait mknodes mangle udevcreatecookie
udevreleasecookie udevflags udevcomplete udevcomplete_all udevcookies target-version targets
version setgeometry splitname io sim era replay-log logd"

_dmctl_long_opts="--addnodeoncreate --addnodeonresume --alias --alldevices --allprograms
--allregions --area --areas --areasize --backend --bounds --checks --clear --columns --concise
--count --deferred --exec --filemap --follow --force --foreground --gid --group --groupid --help
--histogram --inactive --interval --json --length --major --manglename --minor --mode
--nameprefixes --noflush --nogroup --noheadings --nolockfs --nomonitor --noopencount --nosuffix
--notable --notimesuffix --noudevrules --noudevsync --options --precise --programid --raw
--readahead --readonly --region --regionid --regions --relative --retry --rows --segments
--select --separator --setuuid --showkeys --sort --start --table --target --tree --udevcookie
--udevtimeout --uid --unbuffered --units --unquoted --userdata --uuid --verbose --verifyudev
--version --yes"

_dmctl_short_opts="-c -C -f -G -h -j -m -M -n -o -O -r -S -u -U -v -y"

# options that take an argument (the next word is not a command or device)
_dmctl_arg_opts="--alias --areas --areasize --backend --bounds --count --exec --follow --gid
--groupid --interval --length --major --manglename --minor --mode --options --programid
--readahead --regionid --regions --select --separator --sort --start --table --target
--udevcookie --udevtimeout --uid --units --userdata --uuid --verbose -G -j -m -M -o -O -S -u -U"

# commands whose (first) arguments are devices
_dmctl_dev_cmds="remove suspend resume clear load reload wipe_table rename measure message
info deps status table wait mknodes mangle setgeometry"

_dmctl_prog() {
    # the dmctl binary the user is completing for (DMCTL overrides, for tests)
    if [ -n "${DMCTL:-}" ]; then echo "$DMCTL"; else echo "${COMP_WORDS[0]}"; fi
}

_dmctl_devices() {
    local prog
    prog=$(_dmctl_prog)
    local out
    out=$("$prog" ls 2>/dev/null) || out=""
    if [ -n "$out" ] && [ "$out" != "No devices found" ]; then
        printf '%s\n' "$out" | cut -f1
    elif [ -d /dev/mapper ]; then
        command ls /dev/mapper 2>/dev/null | grep -vx control
    fi
}

_dmctl_targets() {
    "$(_dmctl_prog)" targets 2>/dev/null | awk '{print $1}'
}

_dmctl_uuids() {
    "$(_dmctl_prog)" info -c --noheadings -o uuid 2>/dev/null | grep -v '^$'
}

_dmctl_cookies() {
    "$(_dmctl_prog)" udevcookies 2>/dev/null | awk 'NR > 1 {print $1}'
}

_dmctl_fields() {
    "$(_dmctl_prog)" info -c -o help 2>&1 | awk '/^  [a-z_]/ {print $1}'
}

_dmctl_is_arg_opt() {
    local o
    for o in $_dmctl_arg_opts; do
        [ "$1" = "$o" ] && return 0
    done
    return 1
}

_dmctl() {
    local cur prev words cword
    cur=${COMP_WORDS[COMP_CWORD]}
    prev=""
    [ "$COMP_CWORD" -gt 0 ] && prev=${COMP_WORDS[COMP_CWORD-1]}
    COMPREPLY=()

    # find the command word and the position of the current word among the arguments
    local i w cmd="" nargs=0 tree=0 columns=0 sub=""
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [ "$w" = "--" ]; then continue; fi
        case "$w" in
            --tree) tree=1 ;;
            -c|-C|--columns) columns=1 ;;
        esac
        if [[ "$w" == -* ]]; then
            if [[ "$w" != *=* ]] && _dmctl_is_arg_opt "$w"; then i=$((i + 1)); fi
            continue
        fi
        if [ -z "$cmd" ]; then cmd=$w; else
            [ -z "$sub" ] && sub=$w
            nargs=$((nargs + 1))
        fi
    done

    # option values
    case "$prev" in
        --target) COMPREPLY=($(compgen -W "$(_dmctl_targets)" -- "$cur")); return ;;
        --manglename) COMPREPLY=($(compgen -W "none hex auto" -- "$cur")); return ;;
        --readahead) COMPREPLY=($(compgen -W "auto none" -- "$cur")); return ;;
        --backend) COMPREPLY=($(compgen -W "auto kernel sim" -- "$cur")); return ;;
        -u|--uuid) COMPREPLY=($(compgen -W "$(_dmctl_uuids)" -- "$cur")); return ;;
        --udevcookie) COMPREPLY=($(compgen -W "$(_dmctl_cookies)" -- "$cur")); return ;;
        --exec) COMPREPLY=($(compgen -c -- "$cur")); return ;;
        --table) COMPREPLY=(); return ;;
        -o|--options)
            if [ "$tree" = 1 ]; then
                COMPREPLY=($(compgen -W "ascii utf vt100 compact inverted notrunc blkdevname device nodevice active open rw uuid" -- "$cur"))
            elif [ "$columns" = 1 ]; then
                COMPREPLY=($(compgen -W "$(_dmctl_fields) help" -- "$cur"))
            else
                COMPREPLY=($(compgen -W "devno devname blkdevname" -- "$cur"))
            fi
            return ;;
        -j|--major|-m|--minor|-U|--uid|-G|--gid|-M|--mode|--separator|-S|--select|-O|--sort|--count|--interval|--udevtimeout|--verbose)
            return ;;
    esac

    if [[ "$cur" == -* ]]; then
        case "$cmd" in
            io|sim|era|logd)
                COMPREPLY=($(compgen -W "--help --from --pattern --sectors --offset --fua --preflush --meta --to --bs --fsync-every --seek --quiet --seed --reads --writes --flushes --metadata-snapshot --json --xml --logical --yes --force --clear" -- "$cur")) ;;
            replay-log)
                COMPREPLY=($(compgen -W "--log --replay --limit --start-entry --start-mark --end-mark --next-flush --next-fua --find --num-entries --no-discard --fsck --check --start-sector --end-sector --verbose --json --no-progress" -- "$cur")) ;;
            *)
                COMPREPLY=($(compgen -W "$_dmctl_long_opts $_dmctl_short_opts" -- "$cur")) ;;
        esac
        return
    fi

    if [ -z "$cmd" ]; then
        COMPREPLY=($(compgen -W "$_dmctl_commands" -- "$cur"))
        return
    fi

    case "$cmd" in
        create)
            [ "$nargs" -ge 1 ] && COMPREPLY=($(compgen -f -- "$cur")) ;;
        load|reload)
            if [ "$nargs" = 0 ]; then COMPREPLY=($(compgen -W "$(_dmctl_devices)" -- "$cur"))
            else COMPREPLY=($(compgen -f -- "$cur")); fi ;;
        message)
            if [ "$nargs" = 0 ]; then COMPREPLY=($(compgen -W "$(_dmctl_devices)" -- "$cur"))
            elif [ "$nargs" = 1 ]; then COMPREPLY=($(compgen -W "0" -- "$cur"))
            elif [ "$nargs" = 2 ]; then
                COMPREPLY=($(compgen -W "@cancel_deferred_remove checkpoint take_metadata_snap drop_metadata_snap mark" -- "$cur"))
            fi ;;
        rename|wait|setgeometry)
            [ "$nargs" = 0 ] && COMPREPLY=($(compgen -W "$(_dmctl_devices)" -- "$cur"))
            [ "$cmd" = rename ] && [ "$nargs" = 1 ] && COMPREPLY=($(compgen -W "--setuuid" -- "$cur")) ;;
        target-version)
            COMPREPLY=($(compgen -W "$(_dmctl_targets)" -- "$cur")) ;;
        splitname)
            [ "$nargs" = 1 ] && COMPREPLY=($(compgen -W "LVM" -- "$cur")) ;;
        udevreleasecookie|udevflags|udevcomplete)
            COMPREPLY=($(compgen -W "$(_dmctl_cookies)" -- "$cur")) ;;
        stats)
            COMPREPLY=($(compgen -W "help clear create delete group list print report ungroup update_filemap version" -- "$cur")) ;;
        io)
            if [ "$nargs" = 0 ]; then COMPREPLY=($(compgen -W "write read discard flush script copy" -- "$cur"))
            elif [ "$nargs" = 1 ]; then COMPREPLY=($(compgen -W "$(_dmctl_devices)" -- "$cur"))
            else COMPREPLY=($(compgen -f -- "$cur")); fi ;;
        sim)
            if [ "$nargs" = 0 ]; then COMPREPLY=($(compgen -W "crash settle fail heal status dmesg reset export" -- "$cur"))
            elif [ "$sub" = export ] && [[ $cur == -* ]]; then COMPREPLY=($(compgen -W "--socket --pidfile --readonly" -- "$cur"))
            elif [ "$sub" = export ] && [ "$nargs" = 1 ]; then COMPREPLY=($(compgen -W "$(_dmctl_devices)" -- "$cur"))
            else COMPREPLY=($(compgen -f -- "$cur")); fi ;;
        era)
            if [ "$nargs" = 0 ]; then COMPREPLY=($(compgen -W "changed-since dump" -- "$cur"))
            else COMPREPLY=($(compgen -f -- "$cur")); fi ;;
        replay-log)
            COMPREPLY=($(compgen -f -- "$cur")) ;;
        logd)
            if [ "$nargs" = 0 ]; then COMPREPLY=($(compgen -W "start run stop status" -- "$cur"))
            else case "$prev" in
                --socket|--pidfile) COMPREPLY=($(compgen -f -- "$cur")) ;;
                --state-dir) COMPREPLY=($(compgen -d -- "$cur")) ;;
                *) COMPREPLY=($(compgen -W "--socket --pidfile --state-dir --syslog --no-syslog --kernel --no-kernel --force --json --verbose" -- "$cur")) ;;
            esac; fi ;;
        *)
            case " $(echo $_dmctl_dev_cmds) " in
                *" $cmd "*) COMPREPLY=($(compgen -W "$(_dmctl_devices)" -- "$cur")) ;;
            esac ;;
    esac
}

complete -F _dmctl dmctl
