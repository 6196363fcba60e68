#pragma once
// "did you mean" for CLI11 command lines, header-only so every tool (tools/, bench/) includes it: on a parse error it
// names the first argument that is no option of the app and the closest option name (core::nearestName, the Levenshtein
// match the config and topology loaders use). copro::cli::parse replaces CLI11_PARSE.
#include <CLI/CLI.hpp>
#include <cctype>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "copro/core/config.hpp"

namespace copro::cli {

/// Every spelling of the options of the app and of its subcommands ("--ranks", "-b").
inline std::vector<std::string> optionNames(const CLI::App& app) {
  std::vector<std::string> names;
  for (const CLI::Option* opt : app.get_options()) {
    for (const auto& l : opt->get_lnames()) names.push_back("--" + l);
    for (const auto& s : opt->get_snames()) names.push_back("-" + s);
  }
  for (const CLI::App* sub : app.get_subcommands([](const CLI::App*) { return true; })) {
    for (auto& n : optionNames(*sub)) names.push_back(std::move(n));
  }
  return names;
}

/// True when `arg` ("--ranks=4", "-n2", "-b") starts with one of `names`.
inline bool namesAnOption(std::string_view arg, const std::vector<std::string>& names) {
  const std::string_view name = arg.substr(0, arg.find('='));
  for (const auto& n : names) {
    if (name == n) return true;
    if (arg.size() > 2 && arg[1] != '-' && n.size() == 2 && arg.substr(0, 2) == n) return true;  // "-n2"
  }
  return false;
}

/// " (did you mean '--ranks'?)" for the first unknown option in argv, or "" when none is close.
inline std::string suggestion(const CLI::App& app, int argc, const char* const* argv) {
  const auto names = optionNames(app);
  for (int i = 1; i < argc; ++i) {
    const std::string_view arg(argv[i]);
    if (arg == "--") break;
    const bool number = arg.size() > 1 && (std::isdigit(static_cast<unsigned char>(arg[1])) != 0 || arg[1] == '.');
    if (arg.size() < 2 || arg[0] != '-' || number || namesAnOption(arg, names)) continue;
    const std::string name(arg.substr(0, arg.find('=')));
    const std::string hint = core::nearestName(name, names);
    if (!hint.empty()) return "unknown option '" + name + "' (did you mean '" + hint + "'?)";
    return "unknown option '" + name + "' (" + app.get_name() + " --help lists them)";
  }
  return {};
}

/// Parses argv; returns -1 on success, else the exit code (0 after --help). An error prints one line on
/// stderr: CLI11's message, or for an unknown option the closest option name.
inline int parse(CLI::App& app, int argc, const char* const* argv) {
  try {
    app.parse(argc, argv);
    return -1;
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    const std::string hint = suggestion(app, argc, argv);
    if (!hint.empty()) {
      std::fprintf(stderr, "%s: %s\n", app.get_name().c_str(), hint.c_str());
      return e.get_exit_code() != 0 ? e.get_exit_code() : 1;
    }
    // One line, as for every other error ("copro-perf: Could not convert: --ranks = 1e9 (see --help)").
    std::fprintf(stderr, "%s: %s (see --help)\n", app.get_name().c_str(), e.what());
    return e.get_exit_code() != 0 ? e.get_exit_code() : 1;
  }
}

}  // namespace copro::cli
