//! Rewrites every position in a condition AST, e.g. from condition-relative to file-relative.

use crate::rules::condition::ast::{Expr, Operand, Pos, Rhs, TransformArg, Value};

/// Applies `f` to every position in `expr`.
pub(crate) fn remap_expr(expr: &mut Expr, f: &dyn Fn(Pos) -> Pos) {
    match expr {
        Expr::And(children, pos) | Expr::Or(children, pos) => {
            *pos = f(*pos);
            for child in children {
                remap_expr(child, f);
            }
        }
        Expr::Not(child, pos) => {
            *pos = f(*pos);
            remap_expr(child, f);
        }
        Expr::Macro(_, pos) => *pos = f(*pos),
        Expr::Check(check) => {
            check.pos = f(check.pos);
            remap_operand(&mut check.lhs, f);
            remap_rhs(&mut check.rhs, f);
        }
    }
}

fn remap_operand(operand: &mut Operand, f: &dyn Fn(Pos) -> Pos) {
    match operand {
        Operand::Field(field) => field.pos = f(field.pos),
        Operand::Transform { args, pos, .. } => {
            *pos = f(*pos);
            for arg in args {
                match arg {
                    TransformArg::Operand(inner) => remap_operand(inner, f),
                    TransformArg::Literal(_, pos) => *pos = f(*pos),
                    TransformArg::List(values, pos) => {
                        *pos = f(*pos);
                        remap_values(values, f);
                    }
                }
            }
        }
    }
}

fn remap_rhs(rhs: &mut Rhs, f: &dyn Fn(Pos) -> Pos) {
    match rhs {
        Rhs::None => {}
        Rhs::Value(value) => value.pos = f(value.pos),
        Rhs::List(values, pos) => {
            *pos = f(*pos);
            remap_values(values, f);
        }
        Rhs::ListName(_, pos) => *pos = f(*pos),
        Rhs::Operand(operand) => remap_operand(operand, f),
    }
}

fn remap_values(values: &mut [Value], f: &dyn Fn(Pos) -> Pos) {
    for value in values {
        value.pos = f(value.pos);
    }
}
