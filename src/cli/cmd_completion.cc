// sbx completion: a shell completion script, generated from the commands themselves so it never
// falls behind them. Sandbox ids and image references are completed by asking sbx.

#include <cstdio>
#include <functional>

#include "src/base/strings.h"
#include "src/cli/commands.h"

namespace sbx::cli {

namespace {

struct Node {
  std::string path;  // "", "run", "images pull"
  std::vector<std::string> subcommands;
  std::vector<std::string> flags;   // every option name
  std::vector<std::string> values;  // the names of options that take a value
};

void Collect(const CLI::App& app, const std::string& path, std::vector<Node>* out) {
  Node node;
  node.path = path;
  for (const CLI::Option* option : app.get_options()) {
    if (option->get_positional()) continue;
    std::vector<std::string> names;
    for (const auto& s : option->get_snames()) names.push_back("-" + s);
    for (const auto& l : option->get_lnames()) names.push_back("--" + l);
    for (const auto& n : names) {
      node.flags.push_back(n);
      if (option->get_expected_max() > 0) node.values.push_back(n);
    }
  }
  auto subs = const_cast<CLI::App&>(app).get_subcommands([](CLI::App*) { return true; });
  for (CLI::App* sub : subs) {
    node.subcommands.push_back(sub->get_name());
    for (const auto& alias : sub->get_aliases()) node.subcommands.push_back(alias);
  }
  out->push_back(node);
  for (CLI::App* sub : subs) {
    std::string sub_path = path.empty() ? sub->get_name() : path + " " + sub->get_name();
    Collect(*sub, sub_path, out);
    for (const auto& alias : sub->get_aliases()) {
      Collect(*sub, path.empty() ? alias : path + " " + alias, out);
    }
  }
}

std::string CaseFunction(const std::string& name, const std::vector<Node>& nodes,
                         const std::function<const std::vector<std::string>&(const Node&)>& field) {
  std::string out = name + "() {\n  case \"$1\" in\n";
  for (const auto& n : nodes) {
    out += "    \"" + n.path + "\") echo \"" + Join(field(n), " ") + "\" ;;\n";
  }
  out += "  esac\n}\n";
  return out;
}

std::string BashScript(const CLI::App& app) {
  std::vector<Node> nodes;
  Collect(app, "", &nodes);
  std::string out =
      "# bash completion for sbx. Load it with:\n"
      "#   source <(sbx completion bash)\n"
      "# or install it: sbx completion bash > /etc/bash_completion.d/sbx\n\n";
  out += CaseFunction(
      "_sbx_subcommands", nodes, [](const Node& n) -> const auto& { return n.subcommands; });
  out += CaseFunction(
      "_sbx_flags", nodes, [](const Node& n) -> const auto& { return n.flags; });
  out += CaseFunction(
      "_sbx_values", nodes, [](const Node& n) -> const auto& { return n.values; });
  out += R"BASH(
_sbx_ids() { sbx ls -q 2>/dev/null; }
_sbx_images() { sbx images ls -q 2>/dev/null | sed -n -e p -e 's#^docker\.io/library/##p;t' -e 's#^docker\.io/##p'; }

_sbx() {
  local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"
  local path="" word skip=0 npos=0 i
  for ((i = 1; i < COMP_CWORD; i++)); do
    word="${COMP_WORDS[i]}"
    if ((skip)); then skip=0; continue; fi
    case " $(_sbx_values "$path") " in *" $word "*) skip=1; continue ;; esac
    [[ $word == -* ]] && continue
    case " $(_sbx_subcommands "$path") " in
      *" $word "*) path="${path:+$path }$word"; npos=0 ;;
      *) ((npos++)) ;;
    esac
  done
  case " $(_sbx_values "$path") " in
    *" $prev "*)
      case "$prev" in
        -o|--output) COMPREPLY=($(compgen -W "table json" -- "$cur")) ;;
        --network) COMPREPLY=($(compgen -W "default none" -- "$cur")) ;;
        --env-file|--mount-file|-i|--input|--config|--state-dir) COMPREPLY=($(compgen -f -- "$cur")) ;;
        *) COMPREPLY=() ;;
      esac
      return ;;
  esac
  if [[ $cur == -* ]]; then
    COMPREPLY=($(compgen -W "$(_sbx_flags "$path")" -- "$cur"))
    return
  fi
  local subs
  subs="$(_sbx_subcommands "$path")"
  if [[ -n $subs ]]; then
    COMPREPLY=($(compgen -W "$subs" -- "$cur"))
    return
  fi
  case "$path" in
    exec|sh|get|inspect|logs)
      if ((npos == 0)); then COMPREPLY=($(compgen -W "$(_sbx_ids)" -- "$cur")); else COMPREPLY=($(compgen -c -- "$cur")); fi ;;
    stop|rm|delete|kill|wait|stats) COMPREPLY=($(compgen -W "$(_sbx_ids)" -- "$cur")) ;;
    extend) if ((npos == 0)); then COMPREPLY=($(compgen -W "$(_sbx_ids)" -- "$cur")); fi ;;
    run)
      if ((npos == 0)); then COMPREPLY=($(compgen -W "$(_sbx_images)" -- "$cur")); else COMPREPLY=($(compgen -c -- "$cur")); fi ;;
    cp)
      COMPREPLY=($(compgen -f -- "$cur") $(compgen -W "$(_sbx_ids | sed 's/$/:/')" -- "$cur"))
      compopt -o nospace 2>/dev/null ;;
    "images rm"|"image rm") COMPREPLY=($(compgen -W "$(_sbx_images)" -- "$cur")) ;;
    completion) COMPREPLY=($(compgen -W "bash zsh fish" -- "$cur")) ;;
    *) COMPREPLY=() ;;
  esac
}
complete -F _sbx sbx
)BASH";
  return out;
}

// A `switch` on the command path that prints the words `field` gives for it, one a line.
std::string FishSwitch(const std::string& name, const std::vector<Node>& nodes,
                       const std::function<const std::vector<std::string>&(const Node&)>& field) {
  std::string out = "function " + name + "\n  switch \"$argv[1]\"\n";
  for (const auto& n : nodes) {
    if (field(n).empty()) continue;
    out += "    case '" + n.path + "'\n      printf '%s\\n' " + Join(field(n), " ") + "\n";
  }
  out += "  end\nend\n";
  return out;
}

// The same rules as the bash script, in fish: one function finds the command path and the
// position of the word being completed, and prints the candidates (fish filters them by prefix).
std::string FishScript(const CLI::App& app) {
  std::vector<Node> nodes;
  Collect(app, "", &nodes);
  std::string out =
      "# fish completion for sbx. Load it with:\n"
      "#   sbx completion fish | source\n"
      "# or install it: sbx completion fish > ~/.config/fish/completions/sbx.fish\n\n";
  out += FishSwitch(
      "__sbx_subcommands", nodes, [](const Node& n) -> const auto& { return n.subcommands; });
  out += FishSwitch(
      "__sbx_flags", nodes, [](const Node& n) -> const auto& { return n.flags; });
  out += FishSwitch(
      "__sbx_values", nodes, [](const Node& n) -> const auto& { return n.values; });
  out += R"FISH(
function __sbx_ids
  sbx ls -q 2>/dev/null
end

function __sbx_images
  sbx images ls -q 2>/dev/null | sed -n -e p -e 's#^docker\.io/library/##p;t' -e 's#^docker\.io/##p'
end

function __sbx_complete
  set -l words (commandline -opc)
  set -l cur (commandline -ct)
  set -l path ''
  set -l skip 0
  set -l npos 0
  for word in $words[2..-1]
    if test $skip -eq 1
      set skip 0
      continue
    end
    if contains -- $word (__sbx_values "$path")
      set skip 1
      continue
    end
    if string match -q -- '-*' $word
      continue
    end
    if contains -- $word (__sbx_subcommands "$path")
      set path (string trim -- "$path $word")
      set npos 0
    else
      set npos (math $npos + 1)
    end
  end
  set -l prev ''
  if test (count $words) -gt 1
    set prev $words[-1]
  end
  if contains -- $prev (__sbx_values "$path")
    switch $prev
      case -o --output
        printf '%s
' table json
      case --network
        printf '%s
' default none
      case --env-file --mount-file -i --input --config --state-dir
        __fish_complete_path $cur
    end
    return
  end
  if string match -q -- '-*' $cur
    __sbx_flags "$path"
    return
  end
  set -l subs (__sbx_subcommands "$path")
  if test (count $subs) -gt 0
    printf '%s
' $subs
    return
  end
  switch "$path"
    case exec sh get inspect logs
      if test $npos -eq 0
        __sbx_ids
      else
        __fish_complete_command $cur
      end
    case stop rm delete kill wait stats
      __sbx_ids
    case extend
      test $npos -eq 0; and __sbx_ids
    case run
      if test $npos -eq 0
        __sbx_images
      else
        __fish_complete_command $cur
      end
    case cp
      __fish_complete_path $cur
      __sbx_ids | sed 's/$/:/'
    case 'images rm' 'image rm'
      __sbx_images
    case completion
      printf '%s
' bash zsh fish
  end
end

complete -c sbx -f -a '(__sbx_complete)'
)FISH";
  return out;
}

}  // namespace

void AddCompletionCommand(CLI::App& app, Context& ctx) {
  auto shell = std::make_shared<std::string>();
  CLI::App* cmd = app.add_subcommand("completion", "Print a shell completion script");
  cmd->footer(
      "  source <(sbx completion bash)     or: sbx completion bash > /etc/bash_completion.d/sbx\n"
      "  source <(sbx completion zsh)\n"
      "  sbx completion fish | source     or: sbx completion fish > "
      "~/.config/fish/completions/sbx.fish\n"
      "Completes commands, flags, sandbox ids and image references.");
  cmd->add_option("SHELL", *shell, "bash, zsh or fish")
      ->required()
      ->check(CLI::IsMember({"bash", "zsh", "fish"}))
      ->type_name("");
  CLI::App* root = &app;
  cmd->callback([&ctx, shell, root] {
    if (*shell == "fish") {
      fputs(FishScript(*root).c_str(), stdout);
      ctx.exit_code = kExitOk;
      return;
    }
    std::string script = BashScript(*root);
    if (*shell == "zsh") {
      // zsh runs bash completion functions through bashcompinit.
      script =
          "#compdef sbx\n# zsh completion for sbx: source <(sbx completion zsh)\n"
          "autoload -U +X compinit && compinit\n"
          "autoload -U +X bashcompinit && bashcompinit\n\n" +
          script;
    }
    fputs(script.c_str(), stdout);
    ctx.exit_code = kExitOk;
  });
}

}  // namespace sbx::cli
